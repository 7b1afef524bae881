"""Training one trial, without Ray: datasets, models and their costs, the ResNet loop, SVMs,
a space's own trainables. Runs on a bare GPU machine with torch, torchvision and numpy."""
