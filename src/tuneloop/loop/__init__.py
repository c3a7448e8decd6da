"""The improvement loop: new data and feedback -> candidate -> gate against production -> promote or keep."""
