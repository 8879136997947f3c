from .mvtec import MVTecDataset, Sample
from .synthetic import generate_dataset

__all__ = ["MVTecDataset", "Sample", "generate_dataset"]
