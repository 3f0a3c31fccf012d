# MambaSCD (Chen et al., "ChangeMamba", IEEE TGRS 2024; github.com/ChenHongruixuan/MambaCD,
# changedetection/models/STMambaSCD.py + SemanticDecoder.py): the MambaBCD model (shared VMamba
# encoder, spatio-temporal change decoder, 2-class classifier) plus one semantic decoder per
# date (MambaSemanticHead, official decoder_T1 / decoder_T2) with ONE classifier shared by both
# (official aux_clf; share_semantic_classifier=True). The semantic heads have K + 1 = 7 outputs
# for SECOND ("no change" included but never trained: its pixels are ignored); predictions are
# (argmax over the land-cover outputs 1..K + 1) * change (see MambaSCDDetector).
# Loss as official train_MambaSCD.py:
#   ce_cd + 0.5 (ce_t1 + ce_t2 + 0.5 sim) + 0.75 (lovasz_cd + 0.5 (lovasz_t1 + lovasz_t2)),
# i.e. the loss_weight s below: change CE 1 / Lovasz 0.75 (from mambabcd.py), each semantic CE
# 0.5 / Lovasz 0.375, similarity (SemanticConsistencyLoss) 0.25.
# This file is MambaSCD-Tiny for SECOND (37,125,641 parameters, equal to the official model);
# Small / Base: 58,511,753 / 97,034,889.
_base_ = ['./mambabcd.py']
num_semantic_classes = 7  # SECOND: no change + 6 land-cover classes (official output_clf=7)
model = dict(
    type='MambaSCDDetector',
    semantic_head=dict(
        type='MambaSemanticHead',
        in_channels=[96, 192, 384, 768],  # VMamba-T dims (one date)
        channels=128,
        norm_layer='ln',
        mlp_ratio=4.0,
        drop_path=0.1,
        num_classes=num_semantic_classes,
        align_corners=False,
        loss_decode=[
            dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
                 loss_weight=0.5),
            dict(type='mmseg.LovaszLoss', loss_type='multi_class', classes='present',
                 per_image=False, reduction='none', loss_weight=0.375),
        ]),
    share_semantic_head=False,
    share_semantic_classifier=True,
    consistency_loss=dict(type='SemanticConsistencyLoss', loss_weight=0.25))
