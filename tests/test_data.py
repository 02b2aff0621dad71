"Data sets, discovery, cache, fixtures for every reader, bad input, stratified subsets."
import gzip, os, shutil, tarfile, time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st
import io
import numpy as np
from PIL import Image

import robustsparsesnn.data as D
from robustsparsesnn.data import (DATASETS, channel_stats, find_data, get_loaders, load_dataset, load_classes,
                                  stratified_split, synthetic_spec, write_idx)


def jpeg(img: torch.Tensor) -> bytes:
    "uint8 (C, H, W) -> JPEG bytes (quality 95), with Pillow."
    buf = io.BytesIO()
    a = img.permute(1, 2, 0).numpy()
    Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, 'JPEG', quality=95)
    return buf.getvalue()


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    "A per-test empty cache; downloads off."
    cache = tmp_path / 'cache'
    monkeypatch.setenv('RSNN_CACHE', str(cache))
    monkeypatch.setenv('RSNN_DOWNLOAD', '0')
    return cache


def cache_files(cache: Path):
    return sorted(p for p in cache.rglob('*') if p.is_file()) if cache.exists() else []


# ---------------------------------------------------------------------------------------------- real data
def _real(name):
    try: return find_data(name, download=False)
    except FileNotFoundError as e: pytest.skip(f"{name} not present here ({str(e).splitlines()[0]}); set RSNN_DATA to run")


@pytest.mark.parametrize('name,n_train,n_test,c', [('fashion-mnist', 60_000, 10_000, 1), ('cifar10-jpeg', 50_000, 10_000, 3)])
def test_real_data_sets(name, n_train, n_test, c):
    _real(name)
    spec = DATASETS[name]
    xtr, ytr = load_dataset(name, 'train', download=False)
    xte, yte = load_dataset(name, 'test', download=False)
    assert xtr.shape == (n_train, c, 32, 32) and xte.shape == (n_test, c, 32, 32)
    assert xtr.dtype == xte.dtype == torch.uint8 and ytr.dtype == yte.dtype == torch.int64
    assert ytr.min() == 0 and ytr.max() == 9 and spec.num_classes == 10
    assert torch.bincount(yte).tolist() == [1000] * 10
    assert torch.bincount(ytr).tolist() == [n_train // 10] * 10
    mean, std = channel_stats(xtr)                                   # the spec's numbers are the data's
    assert torch.allclose(torch.tensor(mean), torch.tensor(spec.mean), atol=2e-4)
    assert torch.allclose(torch.tensor(std), torch.tensor(spec.std), atol=2e-4)
    assert (spec.in_channels, spec.image_size) == (c, 32)
    if name == 'fashion-mnist':                                      # zero border of 2 pixels
        assert xtr[:, :, :2].eq(0).all() and xtr[:, :, -2:].eq(0).all() and xtr[:, :, :, :2].eq(0).all()
        assert xtr[:, :, 2:30, 2:30].float().mean() > 50


@pytest.mark.parametrize('name', ['fashion-mnist', 'cifar10-jpeg'])
def test_real_loaders(name):
    _real(name)
    dl = get_loaders(name, batch_size=100, n_train=1000, n_val=500, n_test=300, seed=3, download=False)
    x, y = next(iter(dl.train))
    assert x.dtype == torch.float32 and x.shape == (100, DATASETS[name].in_channels, 32, 32)
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.5
    ys = {k: torch.cat([b[1] for b in getattr(dl, k)]) for k in ('train', 'val', 'test')}
    assert torch.bincount(ys['train']).tolist() == [100] * 10
    assert torch.bincount(ys['val']).tolist() == [50] * 10
    assert torch.bincount(ys['test']).tolist() == [30] * 10
    assert not set(dl.indices['train'].tolist()) & set(dl.indices['val'].tolist())
    again = get_loaders(name, batch_size=100, n_train=1000, n_val=500, n_test=300, seed=3, download=False)
    assert all(torch.equal(dl.indices[k], again.indices[k]) for k in dl.indices)


def test_real_cifar_jpeg_class_order_and_cache_speed():
    _real('cifar10-jpeg')
    load_dataset('cifar10-jpeg', 'train', download=False)                # make sure it is cached
    t = time.perf_counter(); x, _ = load_dataset('cifar10-jpeg', 'train', download=False); int(x.sum())
    print(f'cached CIFAR-10 (JPEG) train: {time.perf_counter() - t:.2f} s')   # a number, not an assertion
    assert load_classes('cifar10-jpeg') == list(D.CIFAR10_CLASSES)


# ---------------------------------------------------------------------------------------------- Fashion-MNIST (IDX)
def make_idx(folder: Path, n_train=30, n_test=20, gz=True, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    data = {}
    for split, n in (('train', n_train), ('t10k', n_test)):
        x = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
        y = torch.randint(0, 10, (n,), generator=g)
        write_idx(folder / f'{split}-images-idx3-ubyte{".gz" if gz else ""}', x)
        write_idx(folder / f'{split}-labels-idx1-ubyte{".gz" if gz else ""}', y)
        data[split] = (x, y)
    return data


@pytest.mark.parametrize('gz,layout', [(True, ''), (False, ''), (True, 'FashionMNIST/raw'), (False, 'fashion-mnist')])
def test_idx_fixture_through_torchvision(tmp_path, fresh_cache, gz, layout):
    data = make_idx(tmp_path / 'data' / layout, gz=gz)
    for split, key in (('train', 'train'), ('test', 't10k')):
        x, y = load_dataset('fashion-mnist', split, root=tmp_path / 'data')
        assert x.shape == (len(y), 1, 32, 32)
        assert torch.equal(x[:, 0, 2:30, 2:30], data[key][0]) and torch.equal(y, data[key][1])
        assert x[:, :, :2].eq(0).all() and x[:, :, 30:].eq(0).all() and x[:, :, :, :2].eq(0).all() and x[:, :, :, 30:].eq(0).all()
    # one cache folder with the two decoded splits, nothing else (the unzipped IDX files were temporary)
    assert [p.name for p in cache_files(fresh_cache)] == ['test.safetensors', 'train.safetensors']


def test_idx_from_rsnn_data(tmp_path, fresh_cache, monkeypatch):
    data = make_idx(tmp_path / 'mine' / 'fashion-mnist', seed=4)
    monkeypatch.setenv('RSNN_DATA', str(tmp_path / 'mine'))
    assert find_data('fashion-mnist') == tmp_path / 'mine' / 'fashion-mnist'
    assert torch.equal(load_dataset('fashion-mnist', 'test')[1], data['t10k'][1])


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'wrong_count'])
def test_idx_corrupted_leaves_no_cache(tmp_path, fresh_cache, damage):
    make_idx(tmp_path / 'fm')
    f = tmp_path / 'fm' / 'train-images-idx3-ubyte.gz'
    if damage == 'truncate': f.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])
    elif damage == 'garbage': f.write_bytes(b'this is not gzip data' * 10)
    else: write_idx(tmp_path / 'fm' / 'train-labels-idx1-ubyte.gz', torch.zeros(7))   # 7 labels for 30 images
    with pytest.raises(ValueError, match=r'cannot read Fashion-MNIST from .*fm.*corrupted, truncated'):
        load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm')
    assert cache_files(fresh_cache) == []
    assert not (fresh_cache / 'fashion-mnist').exists()


def test_damaged_cache_file_is_rebuilt(tmp_path, fresh_cache):
    data = make_idx(tmp_path / 'fm')
    load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm')
    (f,) = [p for p in cache_files(fresh_cache) if p.name == 'train.safetensors']
    f.write_bytes(f.read_bytes()[:100])
    assert torch.equal(load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm')[1], data['train'][1])


# ---------------------------------------------------------------------------------------------- CIFAR-10 (JPEG)
def colour(k, n=10):
    "A distinct solid colour per class, far apart in RGB."
    return torch.tensor([(37 * k) % 256, (91 * k + 40) % 256, 255 - 25 * k], dtype=torch.uint8)


def make_jpeg_tree(folder: Path, per_class=(3, 2), classes=D.CIFAR10_CLASSES, size=32):
    for split, n in zip(('train', 'test'), per_class):
        for k, c in enumerate(classes):
            (folder / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = colour(k)[:, None, None].expand(3, size, size).contiguous()
                (folder / split / c / f'{i:04d}.jpg').write_bytes(jpeg(img))


def make_tarball(tree: Path, out: Path, prefix=''):
    with tarfile.open(out, 'w:gz') as tf:
        for split in ('train', 'test'): tf.add(tree / split, arcname=f'{prefix}{split}')
    return out


def check_colours(x, y):
    for k in range(10):
        m = x[y == k].float().mean((0, 2, 3))
        assert torch.allclose(m, colour(k).float(), atol=6), (k, m)


@pytest.mark.parametrize('form', ['tarball', 'tarball-with-prefix', 'folder'])
def test_jpeg_folder_fixture(tmp_path, fresh_cache, form):
    make_jpeg_tree(tmp_path / 'tree')
    data = tmp_path / 'data'; data.mkdir()
    if form == 'folder': shutil.copytree(tmp_path / 'tree', data / 'cifar10-jpeg')
    else: make_tarball(tmp_path / 'tree', data / 'cifar10-jpeg.tar.gz', prefix='cifar10/' if 'prefix' in form else '')
    x, y = load_dataset('cifar10-jpeg', 'train', root=data)
    assert x.shape == (30, 3, 32, 32) and torch.bincount(y).tolist() == [3] * 10
    check_colours(x, y)                                              # labels follow the sorted class folders
    xt, yt = load_dataset('cifar10-jpeg', 'test', root=data)
    assert torch.bincount(yt).tolist() == [2] * 10
    check_colours(xt, yt)


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'empty'])
def test_jpeg_tarball_corrupted_leaves_no_cache(tmp_path, fresh_cache, damage):
    make_jpeg_tree(tmp_path / 'tree', per_class=(20, 5))
    data = tmp_path / 'data'; data.mkdir()
    tb = make_tarball(tmp_path / 'tree', data / 'cifar10-jpeg.tar.gz')
    blob = tb.read_bytes()
    tb.write_bytes({'truncate': blob[:len(blob) // 2], 'garbage': os.urandom(5000), 'empty': gzip.compress(b'')}[damage])
    with pytest.raises(ValueError, match=r'cannot read CIFAR-10 \(JPEG\) from .*cifar10-jpeg.tar.gz'):
        load_dataset('cifar10-jpeg', 'train', root=data)
    assert cache_files(fresh_cache) == [] and not (fresh_cache / 'cifar10-jpeg').exists()


def test_pillow_fallback_decodes_the_same(tmp_path, fresh_cache, monkeypatch):
    make_jpeg_tree(tmp_path / 'cifar10-jpeg', per_class=(2, 1))
    x, _ = load_dataset('cifar10-jpeg', 'train', root=tmp_path)
    monkeypatch.setattr(D, 'decode_image', None)
    monkeypatch.setenv('RSNN_CACHE', str(tmp_path / 'cache2'))
    x2, _ = load_dataset('cifar10-jpeg', 'train', root=tmp_path)
    assert (x.int() - x2.int()).abs().max() <= 2


def test_broken_jpeg_in_tree(tmp_path, fresh_cache):
    make_jpeg_tree(tmp_path / 'cifar10-jpeg')
    (tmp_path / 'cifar10-jpeg' / 'train' / 'cat' / '0001.jpg').write_bytes(b'\xff\xd8 not really a jpeg')
    with pytest.raises(ValueError, match='corrupted'):
        load_dataset('cifar10-jpeg', 'test', root=tmp_path)
    assert cache_files(fresh_cache) == []


# ---------------------------------------------------------------------------------------------- CIFAR-10/100 (python batches)
def make_cifar_batches(folder: Path, c100=False, n=6, seed=0):
    "Fake official batches (the test writes pickles: only torchvision reads them). Returns the train data."
    import pickle
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    K = 100 if c100 else 10
    lab = 'fine_labels' if c100 else 'labels'
    files = (['train'], ['test']) if c100 else ([f'data_batch_{i}' for i in range(1, 6)], ['test_batch'])
    train = []
    for names in files:
        for name in names:
            x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
            y = torch.randint(0, K, (n,), generator=g)
            if names is files[0]: train.append((x, y))
            with open(folder / name, 'wb') as f: pickle.dump({'data': x.flatten(1).numpy(), lab: y.tolist()}, f)
    meta = {'fine_label_names' if c100 else 'label_names': [f'c{k}' for k in range(K)]}
    with open(folder / ('meta' if c100 else 'batches.meta'), 'wb') as f: pickle.dump(meta, f)
    return torch.cat([x for x, _ in train]), torch.cat([y for _, y in train])


@pytest.mark.parametrize('name,form', [('cifar10', 'folder'), ('cifar10', 'tarball'), ('cifar100', 'folder')])
def test_cifar_batches_through_torchvision(tmp_path, fresh_cache, monkeypatch, name, form):
    import torchvision.datasets.cifar as tvc
    monkeypatch.setattr(tvc, 'check_integrity', lambda *a, **k: True)      # our fake batches have other md5s
    base = 'cifar-100-python' if name == 'cifar100' else 'cifar-10-batches-py'
    x, y = make_cifar_batches(tmp_path / 'b' / base, c100=name == 'cifar100')
    data = tmp_path / 'data'; data.mkdir()
    if form == 'folder': shutil.move(tmp_path / 'b' / base, data / base)
    else:
        with tarfile.open(data / 'cifar-10-python.tar.gz', 'w:gz') as tf: tf.add(tmp_path / 'b' / base, arcname=base)
    xs, ys = load_dataset(name, 'train', root=data)
    assert torch.equal(xs, x) and torch.equal(ys, y)
    assert load_dataset(name, 'test', root=data)[0].shape == (6, 3, 32, 32)
    assert not list(fresh_cache.rglob(base))                          # extracted batches were temporary


def test_cifar_batches_md5_checked(tmp_path, fresh_cache):
    make_cifar_batches(tmp_path / 'cifar-10-batches-py')
    with pytest.raises(ValueError, match=r'cannot read CIFAR-10 from .*cifar-10-batches-py.*Dataset not found or corrupted'):
        load_dataset('cifar10', root=tmp_path)
    assert cache_files(fresh_cache) == []
    with pytest.raises(FileNotFoundError, match='CIFAR-100'):           # a CIFAR-10 folder is not CIFAR-100
        find_data('cifar100', root=tmp_path / 'cifar-10-batches-py')


# ---------------------------------------------------------------------------------------------- TinyImageNet
WNIDS = ['n01443537', 'n01629819', 'n02124075']


def make_tiny(root: Path, n_train=4, n_val=3):
    t = root / 'tiny-imagenet-200'
    (t / 'val' / 'images').mkdir(parents=True); (t / 'test' / 'images').mkdir(parents=True)
    (t / 'wnids.txt').write_text('\n'.join(WNIDS) + '\n')
    for k, w in enumerate(WNIDS):
        (t / 'train' / w / 'images').mkdir(parents=True)
        (t / 'train' / w / f'{w}_boxes.txt').write_text('')
        for i in range(n_train):
            img = colour(k)[:, None, None].expand(3, 64, 64).contiguous()
            if i == 0: img = img.float().mean(0, keepdim=True).round().to(torch.uint8)      # a greyscale JPEG
            (t / 'train' / w / 'images' / f'{w}_{i}.JPEG').write_bytes(jpeg(img))
    lines, j = [], 0
    for i in range(n_val):
        for k in (2, 0, 1):                                          # interleaved classes, as in the real file
            img = colour(k)[:, None, None].expand(3, 64, 64).contiguous()
            (t / 'val' / 'images' / f'val_{j}.JPEG').write_bytes(jpeg(img))
            lines.append(f'val_{j}.JPEG\t{WNIDS[k]}\t0\t0\t63\t63'); j += 1
    (t / 'val' / 'val_annotations.txt').write_text('\n'.join(lines) + '\n')
    return t


def snapshot(folder: Path):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob('*'))


def test_tinyimagenet_val_resorted_in_cache(tmp_path, fresh_cache):
    t = make_tiny(tmp_path)
    before = snapshot(t)
    with pytest.warns(UserWarning, match='3 classes, TinyImageNet has 200'):
        x, y = load_dataset('tinyimagenet', 'test', root=tmp_path)
    assert x.shape == (9, 3, 64, 64) and torch.bincount(y).tolist() == [3, 3, 3]
    for k in range(3):                                               # val labels come from the annotation file
        assert torch.allclose(x[y == k].float().mean((0, 2, 3)), colour(k).float(), atol=6)
    xtr, ytr = load_dataset('tinyimagenet', 'train', root=tmp_path)
    assert xtr.shape == (12, 3, 64, 64) and torch.bincount(ytr).tolist() == [4, 4, 4]
    grey = xtr[ytr == 0][0]                                          # the greyscale JPEG became RGB
    assert (grey[0].int() - grey[1].int()).abs().max() <= 2
    (val,) = [p for p in fresh_cache.rglob('val') if p.is_dir()]
    assert sorted(d.name for d in val.iterdir()) == WNIDS
    assert sorted(p.name for p in (val / WNIDS[2]).iterdir()) == ['val_0.JPEG', 'val_3.JPEG', 'val_6.JPEG']
    assert snapshot(t) == before                                     # the user's folder is untouched
    assert load_classes('tinyimagenet', root=tmp_path) == WNIDS
    dl = get_loaders('tinyimagenet', batch_size=4, root=tmp_path)   # random resized crop keeps 64x64
    xb, _ = next(iter(dl.train))
    assert xb.shape == (4, 3, 64, 64) and 0 <= xb.min() and xb.max() <= 1


def test_tinyimagenet_bad_annotation(tmp_path, fresh_cache):
    t = make_tiny(tmp_path)
    with open(t / 'val' / 'val_annotations.txt', 'a') as f: f.write('val_99.JPEG\tn99999999\t0\t0\t1\t1\n')
    with pytest.raises(ValueError, match="n99999999"):
        load_dataset('tinyimagenet', 'test', root=tmp_path)
    assert cache_files(fresh_cache) == [] and not any(p.is_dir() and p.name == 'val' for p in fresh_cache.rglob('*'))


# ---------------------------------------------------------------------------------------------- discovery and bad input
def test_unknown_name():
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'; valid: fashion-mnist, cifar10-jpeg, cifar10, cifar100, tinyimagenet, synthetic"):
        load_dataset('mnist')


def test_missing_root():
    with pytest.raises(FileNotFoundError, match="'/nowhere/data' \\(root=\\) does not exist"):
        get_loaders('cifar10-jpeg', root='/nowhere/data')


def test_root_without_the_data(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        find_data('cifar10-jpeg', root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and 'cifar10-jpeg.tar.gz' in msg and 'RSNN_DATA' in msg and "root=" in msg


def test_not_found_names_every_place(tmp_path, monkeypatch, fresh_cache):
    monkeypatch.setenv('RSNN_DATA', str(tmp_path / 'empty'))
    monkeypatch.chdir(tmp_path)                                      # no project root above; the current folder differs
    with pytest.raises(FileNotFoundError) as e:
        find_data('tinyimagenet')
    msg = str(e.value)
    for why in ('RSNN_DATA', 'current folder', "package's repository", 'system data sets', 'earlier torchvision download',
                'not available for this data set'):
        assert why in msg, why
    assert str(tmp_path / 'empty') in msg and 'does not exist' in msg
    assert msg.count('\n  - ') + msg.startswith('  - ') >= 5


def fake_download(tv_name, ok=True):
    class Fake:
        def __init__(self, root, train=True, download=False):
            if not ok: raise RuntimeError('Error downloading train-images-idx3-ubyte.gz:\nno network')
            make_idx(Path(root) / tv_name / 'raw', gz=True, seed=7)
    return Fake


@pytest.mark.parametrize('ok', [True, False])
def test_download_fallback(tmp_path, fresh_cache, monkeypatch, ok):
    monkeypatch.setattr(D, '_search_roots', lambda: [(tmp_path / 'nothing', 'RSNN_DATA')])
    monkeypatch.setattr(D.torchvision.datasets, 'FashionMNIST', fake_download('FashionMNIST', ok))
    with pytest.raises(FileNotFoundError, match='torchvision download: disabled'):
        find_data('fashion-mnist')                                   # RSNN_DOWNLOAD=0
    monkeypatch.setenv('RSNN_DOWNLOAD', '1')
    if ok:
        assert find_data('fashion-mnist') == fresh_cache / 'downloads' / 'fashion-mnist' / 'FashionMNIST' / 'raw'
    else:
        with pytest.raises(FileNotFoundError, match=r'torchvision download into .*: failed \(Error downloading'):
            find_data('fashion-mnist')
        assert not (fresh_cache / 'downloads' / 'fashion-mnist').exists()   # no half download left


def test_bad_sizes():
    with pytest.raises(ValueError, match=r'n_train=5000 is not possible: synthetic .* has 2000 training images; use an int in 0..2000'):
        get_loaders('synthetic', n_train=5000)
    with pytest.raises(ValueError, match='n_train=1500 .* left after n_val=1000'):
        get_loaders('synthetic', n_val=1000, n_train=1500)
    with pytest.raises(ValueError, match='n_val=3000'):
        get_loaders('synthetic', n_val=3000)
    with pytest.raises(ValueError, match='n_test=501'):
        get_loaders('synthetic', n_test=501)
    with pytest.raises(ValueError, match="n_train=2.5"):
        get_loaders('synthetic', n_train=2.5)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_dataset('synthetic', 'val')
    with pytest.raises(ValueError, match='batch_size'):
        get_loaders('synthetic', batch_size=0)


def test_real_n_train_too_large():
    _real('cifar10-jpeg')
    with pytest.raises(ValueError, match=r'n_train=50001 is not possible: CIFAR-10 \(JPEG\) has 50000 training images'):
        get_loaders('cifar10-jpeg', n_train=50_001, download=False)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv('RSNN_CACHE', str(tmp_path / 'c'))
    assert D.cache_dir() == tmp_path / 'c'
    monkeypatch.delenv('RSNN_CACHE')
    assert D.cache_dir() == Path('~/.cache/robustsparsesnn').expanduser()


# ---------------------------------------------------------------------------------------------- stratified subsets
@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=2, max_size=8), frac=st.tuples(st.floats(0, 1), st.floats(0, 1)),
       seed=st.integers(0, 2**31))
def test_stratified_split_properties(counts, frac, seed):
    labels = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])[torch.randperm(sum(counts))]
    N = len(labels)
    n_val = int(frac[0] * N); n_tr = int(frac[1] * (N - n_val))
    val, tr, rest = stratified_split(labels, [n_val, n_tr, None], seed)
    assert (len(val), len(tr), len(val) + len(tr) + len(rest)) == (n_val, n_tr, N)
    assert len(set(val.tolist()) | set(tr.tolist()) | set(rest.tolist())) == N          # disjoint, covering
    cnt = torch.tensor(counts, dtype=torch.float64)
    for idx, n, left in ((val, n_val, cnt), (tr, n_tr, None)):
        got = torch.bincount(labels[idx], minlength=len(counts)).double()
        if left is not None: assert ((got - n * cnt / N).abs() < 1 + 1e-9).all()       # proportional, +-1
    assert all(torch.equal(a, b) for a, b in zip(stratified_split(labels, [n_val, n_tr, None], seed), (val, tr, rest)))
    for idx in (val, tr):                       # interleaved: every prefix takes from each class in proportion (+-1)
        q = torch.bincount(labels[idx], minlength=len(counts)).double()
        for m in range(1, len(idx) + 1, max(1, len(idx) // 7)):
            got = torch.bincount(labels[idx[:m]], minlength=len(counts)).double()
            assert ((got - m * q / len(idx)).abs() <= 1 + 1e-9).all(), (m, got.tolist(), q.tolist())


def test_stratified_balanced_and_seeded():
    y = torch.arange(5000) % 10
    a = stratified_split(y, [500, 1000], seed=0)
    b = stratified_split(y, [500, 1000], seed=1)
    assert torch.bincount(y[a[0]]).tolist() == [50] * 10 and torch.bincount(y[a[1]]).tolist() == [100] * 10
    assert not torch.equal(a[1], b[1])
    assert torch.equal(stratified_split(y, [500, 2000], seed=0)[0], a[0])           # val does not depend on n_train


# ---------------------------------------------------------------------------------------------- synthetic + loaders
def test_synthetic_is_learnable_with_augmentation():
    torch.manual_seed(0)
    spec = synthetic_spec(num_classes=4, in_channels=3, image_size=16, n_train=512, n_test=256, name='syn-small')
    dl = get_loaders(spec, batch_size=64, n_val=64, seed=0)          # pad-crop-flip augmentation on
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
                              torch.nn.Flatten(), torch.nn.Linear(128, 4))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(4):
        for x, y in dl.train:
            opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
    with torch.no_grad():
        acc = sum((net(x).argmax(1) == y).sum().item() for x, y in dl.test) / 256
    assert acc > 0.85, acc


def test_loader_epochs_and_drop_last():
    x = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8); y = torch.arange(10)
    L = D.BatchLoader(x, y, batch_size=4, shuffle=True, seed=1, drop_last=True)
    assert len(L) == 2 and sum(len(b[1]) for b in L) == 8
    L2 = D.BatchLoader(x, y, batch_size=4, shuffle=True, seed=1)
    assert len(L2) == 3
    e = [torch.cat([b[1] for b in L2]) for _ in range(3)]
    assert sorted(e[0].tolist()) == list(range(10)) and not torch.equal(e[0], e[1])
    L2.set_epoch(1); assert torch.equal(torch.cat([b[1] for b in L2]), e[1])
    xb, _ = next(iter(D.BatchLoader(x, y, batch_size=10)))
    assert torch.equal(xb, x.float() / 255)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU here')
def test_loader_on_gpu():
    dl = get_loaders('synthetic', batch_size=64, n_train=256, device='cuda')
    x, y = next(iter(dl.train))
    assert x.is_cuda and y.is_cuda and x.shape == (64, 3, 32, 32)
