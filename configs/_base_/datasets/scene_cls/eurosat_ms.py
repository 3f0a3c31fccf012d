# EuroSAT multispectral (EuroSATDataset, variant='ms'): Helber et al., JSTARS 2019. 27,000
# Sentinel-2 L1C 64x64 GeoTIFFs with all 13 bands (B01..B12, B8A after B08; uint16 top-of-
# atmosphere reflectance x 10000). data_root: the folder EuroSATallBands.zip was extracted
# into (ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_<n>.tif).
#
# An RGB CLIP tower sees a true-colour picture made from B04/B03/B02: LoadMultiBandImage reads
# the GeoTIFF through rasterio (every band kept), SelectBands keeps three bands and stretches
# reflectance 0-0.3 (DN 0-3000) onto 0-255, the range of the 8-bit pictures CLIP was trained
# on (a display choice: no paper evaluated CLIP zero-shot on the 13-band release). Bands are
# listed blue, green, red: the CLIP data preprocessor (to_rgb=True) flips BGR to RGB, as for
# images read by LoadImageFromFile (see mmrs/datasets/transforms/bands.py).
# Loader and evaluator: scene_cls_default.py; the resize/crop after the band selection are its
# (open_clip's preprocess_val).
_base_ = ['./scene_cls_default.py']
dataset_type = 'EuroSATDataset'
data_root = 'data/EuroSAT'
rgb_bands = (2, 3, 4)  # B02 blue, B03 green, B04 red (1-based band indices of the files)
reflectance_display_range = (0, 3000)
test_pipeline = [
    dict(type='LoadMultiBandImage'),
    dict(type='SelectBands', bands=rgb_bands, value_range=reflectance_display_range,
         out_dtype='uint8'),
    dict(type='mmpretrain.ResizeEdge', scale={{_base_.img_size}}, edge='short',
         backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size={{_base_.img_size}}),
    dict(type='mmpretrain.PackInputs'),
]
test_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, variant='ms', pipeline=test_pipeline))
val_dataloader = test_dataloader
