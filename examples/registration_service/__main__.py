"""``python -m examples.registration_service``: run the registration service (``--help``)."""

import sys

from examples.registration_service.service import main

sys.exit(main())
