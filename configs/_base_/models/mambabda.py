# MambaBDA (Chen et al., "ChangeMamba", IEEE TGRS 2024; github.com/ChenHongruixuan/MambaCD,
# changedetection/models/STMambaBDA.py): a shared VMamba encoder; building localisation by the
# semantic decoder on the PRE-disaster pyramid (localization_head, official decoder_building +
# aux_clf, 2 classes) and damage grading by the spatio-temporal change decoder on (pre, post)
# (decode_head, official decoder_damage + main_clf, 5 classes: background + 4 grades).
# Loss as official train_MambaBDA.py: ce_loc + ce_damage + 0.5 lovasz_loc + 0.75 lovasz_damage,
# the damage background ignored (official training loader: clf_label[clf_label == 0] = 255).
# Data: gt_sem_seg (localisation 0/1, 255 ignored) and gt_damage_seg (0 background, 1..4, 255)
# of the xBD dataset; predictions pred_sem_seg and pred_damage_seg (not masked by the
# localisation, as the official evaluation).
# This file is MambaBDA-Tiny (34,869,767 parameters, equal to the official model);
# Small / Base: 56,255,879 / 94,717,575.
_base_ = ['./mambabcd.py']
model = dict(
    type='MambaBDADetector',
    decode_head=dict(num_classes=5),  # damage; CE 1 + Lovasz 0.75 from mambabcd.py
    localization_head=dict(
        type='MambaSemanticHead',
        in_channels=[96, 192, 384, 768],  # VMamba-T dims (pre-disaster image)
        channels=128,
        norm_layer='ln',
        mlp_ratio=4.0,
        drop_path=0.1,
        num_classes=2,
        align_corners=False,
        loss_decode=[
            dict(type='mmseg.CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
                 loss_weight=1.0),
            dict(type='mmseg.LovaszLoss', loss_type='multi_class', classes='present',
                 per_image=False, reduction='none', loss_weight=0.5),
        ]),
    ignore_damage_background=True,
    mask_damage_by_localization=False)
