"""EfficientDepth training: the model family, losses, data, trainer and export.

Installed as ``edgedepth_train`` (the repository folder is ``train/``). It imports ``edgedepth``;
``edgedepth`` never imports it.
"""
