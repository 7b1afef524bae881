"""The built-in search spaces, installed as the data package tune_mnist.search_spaces."""
