"""``python -m examples.order_fulfilment``: run a few orders and print what happened."""

import sys

from examples.order_fulfilment.run import main

sys.exit(main())
