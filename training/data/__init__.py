"""Dataset readers (ntu, pku, utd, ucla, sbu, folder) that all yield the same clips, one entry
point (registry.load_dataset) and the torch feeder (feeder.py, the only module importing torch)."""
