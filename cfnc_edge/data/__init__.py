from cfnc_edge.data.defects import FAMILIES, add_defect, estimate_foreground, synthetic_defects
from cfnc_edge.data.mvtec import MVTecDataset, Sample
from cfnc_edge.data.synthetic import generate_dataset

__all__ = ["FAMILIES", "MVTecDataset", "Sample", "add_defect", "estimate_foreground", "generate_dataset",
           "synthetic_defects"]
