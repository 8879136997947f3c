"""Label-free model selection: which features and which scorer suit this dataset.

No real defect is needed. Good images get realistic synthetic defects
(data/defects.py); every candidate (backbone, input size, image alignment)
extracts features of the good images and of their defective copies once,
every scorer (Gaussian, memory bank, their fusion at several weights) scores
both with models that never saw the source image (cross-fitting, as the
threshold does), and a stated rule picks the winner (selection/choose.py).
Why not one fixed recipe: measured on three unseen sets (issue 19), the
fusion chosen on magnetic-tile lost 2-5 image AUROC to the memory bank alone
on every one of them.
"""
