# Semantic change detection baseline (the layout of open-cd's scd_upernet_r18 / SECOND
# baselines): the BTC-style R18 + UPerNet binary change detector (shared ResNet-18, binary
# UPerNet head on the fused f1 - f2 pyramid) plus one UPerNet semantic head per date on that
# date's own pyramid. Semantic heads predict classes 1..K only ("no change" = 0 is ignored in
# their loss, the SECOND practice); predictions are (argmax + 1) * binary change.
_base_ = ['./btc_r18_upernet.py']
num_semantic_classes = 6  # SECOND: water, ground, low vegetation, tree, building, playground
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='SiameseSemanticChangeDetector',
    # Built twice (separate weights per date); share_semantic_head=True shares one head.
    semantic_head=dict(
        type='mmseg.UPerHead',
        in_channels=[64, 128, 256, 512],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=128,
        dropout_ratio=0.1,
        num_classes=num_semantic_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        # Averaged over changed pixels only (avg_non_ignore); loss_weight weighs each date's
        # semantic loss against the binary change loss.
        loss_decode=dict(
            type='mmseg.CrossEntropyLoss', use_sigmoid=False, avg_non_ignore=True,
            loss_weight=0.5)),
    share_semantic_head=False)
