"""The warm decision service (``bacon serve``), its wire and its operational log."""
