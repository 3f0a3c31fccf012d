"""Tests of the retrieval recall functions (protocols A and B) and RetrievalMetric.

Oracles, each computed differently from :func:`best_positive_rank`'s counting:

- hand-computed ranks on a 3-image / 6-caption matrix full of exact ties;
- a brute-force loop that sorts every gallery with Python's ``sorted`` (stable) and looks for
  the first positive, on integer-valued random scores (ties everywhere);
- ``torch.sort(stable=True)`` ranks;
- torchmetrics' ``RetrievalHitRate`` (tie-free random scores);
- CLIP_benchmark's ``recall_at_k`` construction (top-k one-hot count > 0, written here);
- SkyScript / FarSLIP's loop (group strings, ``argsort``, set intersection, written here).
"""
import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample
from torchmetrics.retrieval import RetrievalHitRate

from mmrs.evaluation.metrics.retrieval_metric import RetrievalMetric
from mmrs.evaluation.retrieval import (best_positive_rank, merge_duplicate_captions,
                                       protocol_a, protocol_b, recall_from_ranks,
                                       retrieval_recall)
from mmrs.registry import METRICS

torch.set_num_threads(1)

# 3 images, 6 captions (2 per image); c1 and c4 are the same string ("same") with the same
# scores, as a deterministic encoder gives them. Exact ties: row I1 is constant, row I2 has
# five 0.1, c3 ties I0/I1, c0/c2 tie in row I0.
TEXT_IMAGE = [0, 0, 1, 1, 2, 2]
CAPTIONS = ['a', 'same', 'c', 'd', 'same', 'f']
SIM = np.array([[0.5, 0.2, 0.5, 0.3, 0.2, 0.0],
                [0.3, 0.3, 0.3, 0.3, 0.3, 0.3],
                [0.9, 0.1, 0.1, 0.1, 0.1, 0.1]], dtype=np.float32)
KS = (1, 2, 5)


def positives_a(num_images: int, text_image) -> np.ndarray:
    pos = np.zeros((num_images, len(text_image)), dtype=bool)
    for t, i in enumerate(text_image):
        pos[i, t] = True
    return pos


def sorted_rank_oracle(scores: np.ndarray, positives: np.ndarray, ties: str) -> list[int]:
    """Rank of the first positive after sorting each row with Python's stable ``sorted``."""
    ranks = []
    for row, pos in zip(scores.tolist(), positives.tolist()):
        if ties == 'index':
            key = lambda g: (-row[g], g)  # noqa: E731
        elif ties == 'optimistic':
            key = lambda g: (-row[g], not pos[g], g)  # noqa: E731
        else:
            key = lambda g: (-row[g], pos[g], g)  # noqa: E731
        order = sorted(range(len(row)), key=key)
        ranks.append(next(r for r, g in enumerate(order) if pos[g]))
    return ranks


class TestHandMadeTies:
    """Ranks and recalls worked out by hand for SIM (see the comments per row)."""

    # image -> text, protocol A: I0 best positive c0 (ties c2 at a higher index),
    # I1 constant row (first positive c2 after c0, c1), I2 positives c4/c5 at 0.1 after
    # c0=0.9 and the tied c1, c2, c3.
    I2T_A = dict(index=[0, 2, 4], optimistic=[0, 0, 1], pessimistic=[1, 4, 4])
    # text -> image, protocol A: c3 ties I0 (lower index) and its image I1.
    T2I_A = dict(index=[1, 1, 1, 1, 2, 1], optimistic=[1, 1, 1, 0, 2, 1],
                 pessimistic=[1, 1, 1, 1, 2, 1])

    @pytest.mark.parametrize('ties', ['index', 'optimistic', 'pessimistic'])
    def test_ranks_protocol_a(self, ties: str) -> None:
        pos = positives_a(3, TEXT_IMAGE)
        assert best_positive_rank(SIM, pos, ties).tolist() == self.I2T_A[ties]
        assert best_positive_rank(SIM.T, pos.T, ties).tolist() == self.T2I_A[ties]

    def test_recall_protocol_a(self) -> None:
        out = protocol_a(SIM, TEXT_IMAGE, ks=KS)
        expected = {'txt2img_R@1': 0.0, 'txt2img_R@2': 500 / 6, 'txt2img_R@5': 100.0,
                    'img2txt_R@1': 100 / 3, 'img2txt_R@2': 100 / 3, 'img2txt_R@5': 100.0}
        for key, value in expected.items():
            assert out[key] == pytest.approx(value), key
        assert out['mean_recall'] == pytest.approx(np.mean(list(expected.values())))
        assert out['txt2img_mean'] == pytest.approx((0 + 500 / 6 + 100) / 3)
        assert (out['num_images'], out['num_texts']) == (3, 6)

    def test_merge_duplicates(self) -> None:
        texts, first, pos = merge_duplicate_captions(CAPTIONS, TEXT_IMAGE, 3)
        assert texts == ['a', 'c', 'd', 'f', 'same']
        assert first.tolist() == [0, 2, 3, 5, 1]
        # 'same' is positive for both images it describes
        assert pos.astype(int).tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1],
                                            [1, 0, 1]]

    @pytest.mark.parametrize('ties,i2t,t2i', [
        ('index', [0, 1, 3], [1, 1, 1, 1, 1]),
        ('optimistic', [0, 0, 1], [1, 1, 0, 1, 1]),
        ('pessimistic', [1, 3, 3], [1, 1, 1, 1, 1]),
    ])
    def test_ranks_protocol_b(self, ties: str, i2t: list, t2i: list) -> None:
        _, first, pos = merge_duplicate_captions(CAPTIONS, TEXT_IMAGE, 3)
        sim_b = SIM[:, first]
        assert best_positive_rank(sim_b, pos.T, ties).tolist() == i2t
        assert best_positive_rank(sim_b.T, pos, ties).tolist() == t2i

    def test_recall_protocol_b_differs_from_a_on_duplicates(self) -> None:
        out = protocol_b(SIM, TEXT_IMAGE, CAPTIONS, ks=KS)
        assert (out['num_images'], out['num_texts']) == (3, 5)
        # merged 'same' hits at rank 1 through I0, while A's copy of it for I2 is at rank 2
        assert out['txt2img_R@2'] == pytest.approx(100.0)
        assert protocol_a(SIM, TEXT_IMAGE, ks=KS)['txt2img_R@2'] == pytest.approx(500 / 6)
        assert out['img2txt_R@1'] == pytest.approx(100 / 3)
        assert out['img2txt_R@2'] == pytest.approx(200 / 3)
        assert out['img2txt_mean'] == pytest.approx((100 / 3 + 200 / 3 + 100) / 3)

    def test_tie_modes_bound_index(self) -> None:
        for ties_low, ties_high in (('pessimistic', 'index'), ('index', 'optimistic')):
            low = protocol_a(SIM, TEXT_IMAGE, KS, ties=ties_low)
            high = protocol_a(SIM, TEXT_IMAGE, KS, ties=ties_high)
            assert all(low[k] <= high[k] for k in low)


class TestAgainstOracles:

    @pytest.mark.parametrize('ties', ['index', 'optimistic', 'pessimistic'])
    @pytest.mark.parametrize('seed', [0, 1, 2])
    def test_brute_force_sort_with_ties(self, ties: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        scores = rng.integers(0, 4, size=(9, 23)).astype(np.float32)  # ties everywhere
        pos = rng.random((9, 23)) < 0.2
        pos[np.arange(9), rng.integers(0, 23, 9)] = True
        assert best_positive_rank(scores, pos, ties).tolist() == \
            sorted_rank_oracle(scores, pos, ties)

    @pytest.mark.parametrize('ties', ['index', 'optimistic', 'pessimistic'])
    def test_row_chunks_do_not_change_ranks(self, ties: str, monkeypatch) -> None:
        import mmrs.evaluation.retrieval as retrieval
        rng = np.random.default_rng(5)
        scores = rng.integers(0, 3, size=(10, 17)).astype(np.float32)
        pos = rng.random((10, 17)) < 0.3
        pos[:, 0] = True
        whole = best_positive_rank(scores, pos, ties)
        monkeypatch.setattr(retrieval, '_CHUNK_ROWS', 3)
        assert best_positive_rank(scores, pos, ties).tolist() == whole.tolist()
        assert whole.tolist() == sorted_rank_oracle(scores, pos, ties)

    def test_index_ties_equal_torch_stable_sort(self) -> None:
        g = torch.Generator().manual_seed(3)
        scores = torch.randint(0, 3, (7, 31), generator=g).float()
        pos = torch.rand(7, 31, generator=g) < 0.15
        pos[:, 5] = True
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices
        expected = [int(torch.nonzero(pos[q][order[q]])[0]) for q in range(7)]
        assert best_positive_rank(scores, pos).tolist() == expected

    @pytest.mark.parametrize('k', [1, 5, 10])
    def test_torchmetrics_hit_rate(self, k: int) -> None:
        g = torch.Generator().manual_seed(k)
        n_img, per = 20, 5
        img = torch.nn.functional.normalize(torch.randn(n_img, 8, generator=g), dim=1)
        txt = torch.nn.functional.normalize(torch.randn(n_img * per, 8, generator=g), dim=1)
        sim = img @ txt.T
        text_image = np.repeat(np.arange(n_img), per)
        pos = torch.from_numpy(positives_a(n_img, text_image))
        out = protocol_a(sim, text_image, ks=(k,))
        for scores, target, key in ((sim, pos, 'img2txt'), (sim.T, pos.T, 'txt2img')):
            q, gal = scores.shape
            indexes = torch.arange(q)[:, None].expand(q, gal)
            ref = RetrievalHitRate(top_k=k)(scores.reshape(-1), target.reshape(-1),
                                            indexes=indexes.reshape(-1))
            assert out[f'{key}_R@{k}'] == pytest.approx(float(ref) * 100, abs=1e-4)

    def test_clip_benchmark_recall_formula(self) -> None:
        """CLIP_benchmark: topk one-hot times positives, summed per query, > 0, averaged."""
        g = torch.Generator().manual_seed(7)
        img = torch.randn(15, 6, generator=g)
        txt = torch.randn(75, 6, generator=g)
        scores = txt @ img.T  # (texts, images) as CLIP_benchmark builds it
        text_image = np.repeat(np.arange(15), 5)
        positive = torch.zeros_like(scores, dtype=torch.bool)
        positive[torch.arange(75), torch.from_numpy(text_image)] = True

        def cb_recall(s: torch.Tensor, p: torch.Tensor, k: int) -> float:
            onehot = torch.nn.functional.one_hot(s.topk(k, dim=1).indices, s.shape[1])
            true_pos = (onehot * p[:, None, :]).sum(dim=(1, 2))
            return float((true_pos > 0).float().mean()) * 100

        out = protocol_a(scores.T, text_image, ks=(1, 5, 10))
        for k in (1, 5, 10):
            assert out[f'txt2img_R@{k}'] == pytest.approx(cb_recall(scores, positive, k))
            assert out[f'img2txt_R@{k}'] == pytest.approx(cb_recall(scores.T, positive.T, k))

    @pytest.mark.parametrize('seed', [0, 1])
    def test_skyscript_loop(self, seed: int) -> None:
        """SkyScript / FarSLIP: group strings, stable argsort per query, set intersection."""
        rng = np.random.default_rng(seed)
        n_img = 12
        vocab = [f'caption {i}' for i in range(20)]
        captions, text_image = [], []
        for i in range(n_img):
            for _ in range(5):
                captions.append(str(rng.choice(vocab)))  # many strings repeat across images
                text_image.append(i)
        img = rng.integers(-2, 3, size=(n_img, 4)).astype(np.float32)
        emb_of = {t: rng.integers(-2, 3, size=4).astype(np.float32) for t in vocab}
        txt = np.stack([emb_of[c] for c in captions])
        sim = img @ txt.T  # integer scores: many ties
        # the reference's gallery: unique texts (pandas groupby: sorted), unique images
        all_texts = sorted(set(captions))
        text2img = {t: set() for t in all_texts}
        img2text = {i: set() for i in range(n_img)}
        for c, i in zip(captions, text_image):
            text2img[c].add(i)
            img2text[i].add(all_texts.index(c))
        text_feat = np.stack([emb_of[t] for t in all_texts])
        ks = (1, 5, 10)
        ref = {f'txt2img_R@{k}': 0 for k in ks} | {f'img2txt_R@{k}': 0 for k in ks}
        for t, text in enumerate(all_texts):
            ranking = np.argsort(-(img @ text_feat[t]), kind='stable')
            for k in ks:
                ref[f'txt2img_R@{k}'] += bool(set(ranking[:k]) & text2img[text])
        for i in range(n_img):
            ranking = np.argsort(-(text_feat @ img[i]), kind='stable')
            for k in ks:
                ref[f'img2txt_R@{k}'] += bool(set(ranking[:k]) & img2text[i])
        out = protocol_b(sim, text_image, captions, ks=ks)
        assert out['num_texts'] == len(all_texts)
        for k in ks:
            assert out[f'txt2img_R@{k}'] == pytest.approx(
                100 * ref[f'txt2img_R@{k}'] / len(all_texts))
            assert out[f'img2txt_R@{k}'] == pytest.approx(100 * ref[f'img2txt_R@{k}'] / n_img)


class TestErrors:

    def test_query_without_positive(self) -> None:
        with pytest.raises(ValueError, match='no positive'):
            best_positive_rank(np.zeros((2, 3)), np.array([[1, 0, 0], [0, 0, 0]], bool))

    def test_image_without_caption(self) -> None:
        with pytest.raises(ValueError, match='no caption'):
            protocol_a(np.zeros((3, 2)), [0, 1])

    def test_bad_inputs(self) -> None:
        with pytest.raises(ValueError, match='NaN'):
            protocol_a(np.array([[np.nan, 0.0]]), [0, 0])
        with pytest.raises(ValueError, match='ties'):
            best_positive_rank(SIM, positives_a(3, TEXT_IMAGE), ties='random')
        with pytest.raises(ValueError, match='entries'):
            protocol_a(SIM, [0, 1])
        with pytest.raises(ValueError, match='protocols'):
            retrieval_recall(SIM, TEXT_IMAGE, CAPTIONS, protocols=('C',))
        with pytest.raises(ValueError, match='captions'):
            retrieval_recall(SIM, TEXT_IMAGE, None, protocols=('B',))
        with pytest.raises(ValueError, match='ks'):
            protocol_a(SIM, TEXT_IMAGE, ks=(0,))
        with pytest.raises(ValueError, match='no queries'):
            recall_from_ranks([], (1,))


def make_samples(seed: int = 0, n_img: int = 8, per: int = 5, dim: int = 6):
    """Data samples as the CLIP model's predict mode fills them, plus the pieces."""
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(n_img, dim, generator=g), dim=1)
    samples, txts, captions = [], [], []
    for i in range(n_img):
        txt = torch.nn.functional.normalize(torch.randn(per, dim, generator=g), dim=1)
        caps = [f'image {i} caption {j}' for j in range(per)]
        s = DataSample(metainfo=dict(img_path=f'imgs/{i:03d}.tif', sample_idx=i))
        s.set_field(img[i], 'image_embedding')
        s.set_field(txt, 'text_embeddings')
        s.set_field(caps, 'captions')
        s.set_field(100 + i, 'img_id')
        samples.append(s)
        txts.append(txt)
        captions += caps
    return samples, img, torch.cat(txts), captions


class TestRetrievalMetric:

    def test_registered_and_matches_functions(self) -> None:
        metric = METRICS.build(dict(type='RetrievalMetric', ks=(1, 5, 10)))
        samples, img, txt, captions = make_samples()
        # shuffled, in two batches, as dicts (what mmengine's evaluator passes)
        order = [5, 2, 7, 0, 1, 6, 3, 4]
        metric.process({}, [samples[i].to_dict() for i in order[:3]])
        metric.process({}, [samples[i].to_dict() for i in order[3:]])
        out = metric.evaluate(len(samples))
        text_image = np.repeat(np.arange(8), 5)
        expected = retrieval_recall(img @ txt.T, text_image, captions)
        assert set(out) == {f'retrieval/{k}' for k in expected}
        for key, value in expected.items():
            assert out[f'retrieval/{key}'] == pytest.approx(value)
        assert out['retrieval/A/num_texts'] == 40

    def test_duplicate_ids_and_captionless_images(self) -> None:
        metric = RetrievalMetric(protocols='A', ks=(1,))
        samples, img, txt, _ = make_samples(n_img=4)
        empty = DataSample(metainfo=dict(img_path='imgs/zzz.tif'))
        empty.set_field(img[0], 'image_embedding')
        empty.set_field(torch.zeros(0, img.shape[1]), 'text_embeddings')
        empty.set_field([], 'captions')
        empty.set_field(999, 'img_id')
        metric.process({}, [s.to_dict() for s in samples + samples[:1] + [empty]])
        out = metric.evaluate(6)
        assert out['retrieval/A/num_images'] == 4
        ref = protocol_a(img @ txt.T, np.repeat(np.arange(4), 5), ks=(1,))
        assert out['retrieval/A/img2txt_R@1'] == pytest.approx(ref['img2txt_R@1'])

    def test_compute_from_similarity(self) -> None:
        metric = RetrievalMetric(ks=KS)
        out = metric.compute_from_similarity(SIM, TEXT_IMAGE, CAPTIONS)
        assert out['A/txt2img_R@2'] == pytest.approx(500 / 6)
        assert out['B/txt2img_R@2'] == pytest.approx(100.0)

    def test_missing_fields_and_shapes(self) -> None:
        metric = RetrievalMetric()
        samples, *_ = make_samples(n_img=1)
        bare = samples[0].to_dict()
        del bare['captions']
        with pytest.raises(KeyError, match='captions'):
            metric.process({}, [bare])
        bad = samples[0].to_dict()
        bad['captions'] = bad['captions'][:2]
        with pytest.raises(ValueError, match='imgs/000.tif'):
            metric.process({}, [bad])
        with pytest.raises(ValueError, match='protocols'):
            RetrievalMetric(protocols=('A', 'X'))
        with pytest.raises(ValueError, match='ties'):
            RetrievalMetric(ties='random')


class TestEndToEnd:
    """A retrieval config through mmengine's Runner: Karpathy JSON → pipeline → tiny random
    CLIP (``predict``) → RetrievalMetric, against the protocol functions on embeddings the
    model computes directly."""

    # RemoteCLIP capitalises (a no-op for open_clip's lower-casing BPE tokenizer), SkyCLIP
    # prefixes 'a satellite image. ' (changes every embedding)
    @pytest.mark.parametrize('config,fmt', [
        ('remoteclip_vit_b32_retrieval_rsitmd', str.capitalize),
        ('skyclip_vit_b32_retrieval_rsitmd', lambda c: 'a satellite image. ' + c),
    ])
    def test_runner_test_matches_direct_embeddings(self, tmp_path, config, fmt) -> None:
        import json

        import cv2
        from mmengine.config import Config
        from mmengine.runner import Runner

        from mmrs.registry import MODELS
        from tests.conftest import REPO_ROOT

        import mmrs.models  # noqa: F401  (registers CLIP)
        if MODELS.get('CLIP') is None:
            pytest.skip('CLIP model not registered')
        rng = np.random.default_rng(0)
        images, words = [], ['a park', 'a road', 'many trees', 'a river', 'a bridge']
        (tmp_path / 'images').mkdir()
        for i in range(6):
            name = f'{i}.tif'
            cv2.imwrite(str(tmp_path / 'images' / name),
                        rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
            sentences = [dict(raw=str(rng.choice(words)), tokens=[], sentid=5 * i + j)
                         for j in range(5)]
            images.append(dict(filename=name, imgid=i, split='test', sentences=sentences))
        (tmp_path / 'dataset_RSITMD.json').write_text(json.dumps(dict(images=images)))

        cfg = Config.fromfile(REPO_ROOT / f'configs/clip/{config}.py')
        cfg.model.model_cfg = dict(
            embed_dim=16, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8,
                                          head_width=16),
            text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=1))
        cfg.model.checkpoint = None
        cfg.model.loss = None
        for t in cfg.test_dataloader.dataset.pipeline:
            if t['type'] == 'mmpretrain.ResizeEdge':
                t['scale'] = 32
            if t['type'] == 'CenterCrop':
                t['crop_size'] = 32
        cfg.test_dataloader.dataset.data_root = str(tmp_path)
        cfg.test_dataloader.update(batch_size=4, num_workers=0, persistent_workers=False)
        cfg.work_dir = str(tmp_path / 'work')
        for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'val_dataloader',
                    'val_cfg', 'val_evaluator'):
            cfg.pop(key, None)
        torch.manual_seed(0)
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()

        # the same model, by hand: embeddings of the captions formatted as the paper does
        model = runner.model.eval()
        dataset = runner.test_dataloader.dataset
        batch = [dataset[i] for i in range(len(dataset))]
        with torch.no_grad():
            data = model.data_preprocessor(dict(inputs=[b['inputs'] for b in batch],
                                                data_samples=[b['data_samples'] for b in batch]))
            img = model.encode_image(data['inputs'])
            captions = [fmt(s['raw']) for e in images for s in e['sentences']]
            txt = model.encode_texts(captions)
        expected = retrieval_recall(img @ txt.T, np.repeat(np.arange(6), 5), captions)
        assert expected['B/num_texts'] == len(set(captions))
        for key, value in expected.items():
            assert metrics[f'retrieval/{key}'] == pytest.approx(value, abs=1e-4), key
