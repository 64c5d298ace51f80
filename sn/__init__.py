"""sn: an emulator of SN, the neural network simulator of Bottou and LeCun."""

__version__ = "0.1.0"
