from cfnc_edge.data.mvtec import MVTecDataset, Sample
from cfnc_edge.data.synthetic import generate_dataset

__all__ = ["MVTecDataset", "Sample", "generate_dataset"]
