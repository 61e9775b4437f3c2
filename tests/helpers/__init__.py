"""What the tests share: helpers that build the recorder's parts, run it, and check what it did."""
