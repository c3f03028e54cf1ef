"""Order fulfilment: a second ONEX workflow, unrelated to registration (see README.md)."""
