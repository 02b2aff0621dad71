"Data sets, discovery, published checksums, the checked cache, fixtures for every reader, bad input, stratified subsets."
import gzip, hashlib, json, os, re, shutil, tarfile, time, warnings
from pathlib import Path

import pytest
import torch
from hypothesis import example, given, settings, strategies as st
import io
import numpy as np
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import robustsparsesnn.data as D
import robustsparsesnn.datafiles as DF
import robustsparsesnn.datasets as DS
from robustsparsesnn.data import get_loaders, stratified_split
from robustsparsesnn.datasets import DATASETS, channel_stats, synthetic_spec
from robustsparsesnn.datafiles import find_data, load_dataset, load_classes
from helpers import write_idx


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
    assert load_classes('cifar10-jpeg') == list(DS.CIFAR10_CLASSES)


@pytest.mark.parametrize('name', ['fashion-mnist', 'cifar10-jpeg'])
def test_real_cache_records_and_passes_its_checks(name):
    src = _real(name)
    spec = DATASETS[name]
    for split in ('train', 'test'):
        x, y = load_dataset(name, split, download=False)
        path = DF._cache_folder(spec, src) / f'{split}.safetensors'
        with safe_open(str(path), 'pt') as f: meta = f.metadata()
        assert (meta['count'], json.loads(meta['shape']), meta['dtype']) == (str(len(y)), list(x.shape), 'uint8')
        assert (meta['label_min'], meta['label_max']) == ('0', '9')
        assert meta['source_verified'] == ('true' if name == 'fashion-mnist' else 'false'), meta['source_check']
        t = time.perf_counter(); DF._read_cache(spec, split, path)
        print(f'{spec.title} {split}: {x.numel() / 1e6:.0f} MB checked in {time.perf_counter() - t:.2f} s')   # a number, not an assertion


def test_real_fashion_mnist_is_the_published_content(tmp_path):
    src = _real('fashion-mnist')
    spec = DATASETS['fashion-mnist']
    assert DF._verify_source(spec, src).startswith('verified')
    # the label files, compressed again (another gzip header, another md5) or uncompressed, still pass; changed, they fail
    for name in ('train-labels-idx1-ubyte', 't10k-labels-idx1-ubyte'):
        gz_md5, raw_md5 = DF._FASHION_MD5[name]
        raw = gzip.decompress((src / f'{name}.gz').read_bytes())
        with gzip.GzipFile(tmp_path / f'{name}.gz', 'wb', mtime=12345) as f: f.write(raw)
        assert hashlib.md5((tmp_path / f'{name}.gz').read_bytes()).hexdigest() != gz_md5
        DF._check_idx_file(spec, tmp_path / f'{name}.gz')
        (tmp_path / name).write_bytes(raw)
        DF._check_idx_file(spec, tmp_path / name)
        changed = bytearray(raw); changed[-1] = (changed[-1] + 1) % 10           # one label differs
        (tmp_path / name).write_bytes(bytes(changed))
        with pytest.raises(ValueError, match=rf'{name} is not the published Fashion-MNIST file: md5 [0-9a-f]{{32}}, published {raw_md5}\.'):
            DF._check_idx_file(spec, tmp_path / name)
        with gzip.GzipFile(tmp_path / f'{name}.gz', 'wb') as f: f.write(bytes(changed))
        with pytest.raises(ValueError, match=rf'published {gz_md5}; decompressed, md5 [0-9a-f]{{32}}, published {raw_md5}'):
            DF._check_idx_file(spec, tmp_path / f'{name}.gz')
        (tmp_path / f'{name}.gz').write_bytes((src / f'{name}.gz').read_bytes()[:1000])                 # truncated
        with pytest.raises(ValueError, match=r'it does not decompress \(EOFError'):
            DF._check_idx_file(spec, tmp_path / f'{name}.gz')


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
        x, y = load_dataset('fashion-mnist', split, root=tmp_path / 'data', verify=False)
        assert x.shape == (len(y), 1, 32, 32)
        assert torch.equal(x[:, 0, 2:30, 2:30], data[key][0]) and torch.equal(y, data[key][1])
        assert x[:, :, :2].eq(0).all() and x[:, :, 30:].eq(0).all() and x[:, :, :, :2].eq(0).all() and x[:, :, :, 30:].eq(0).all()
    # one cache folder with the two decoded splits, nothing else (the unzipped IDX files were temporary)
    assert [p.name for p in cache_files(fresh_cache)] == ['test.safetensors', 'train.safetensors']


def test_idx_from_rsnn_data(tmp_path, fresh_cache, monkeypatch):
    data = make_idx(tmp_path / 'mine' / 'fashion-mnist', seed=4)
    monkeypatch.setenv('RSNN_DATA', str(tmp_path / 'mine'))
    assert find_data('fashion-mnist') == tmp_path / 'mine' / 'fashion-mnist'
    assert torch.equal(load_dataset('fashion-mnist', 'test', verify=False)[1], data['t10k'][1])


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'wrong_count'])
def test_idx_corrupted_leaves_no_cache(tmp_path, fresh_cache, damage):
    make_idx(tmp_path / 'fm')
    f = tmp_path / 'fm' / 'train-images-idx3-ubyte.gz'
    if damage == 'truncate': f.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])
    elif damage == 'garbage': f.write_bytes(b'this is not gzip data' * 10)
    else: write_idx(tmp_path / 'fm' / 'train-labels-idx1-ubyte.gz', torch.zeros(7))   # 7 labels for 30 images
    with pytest.raises(ValueError, match=r'cannot read Fashion-MNIST from .*fm.*corrupted, truncated'):
        load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm', verify=False)
    assert cache_files(fresh_cache) == []
    assert not (fresh_cache / 'fashion-mnist').exists()


def test_damaged_cache_file_is_rebuilt(tmp_path, fresh_cache):
    data = make_idx(tmp_path / 'fm')
    load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm', verify=False)
    (f,) = [p for p in cache_files(fresh_cache) if p.name == 'train.safetensors']
    f.write_bytes(f.read_bytes()[:100])
    with pytest.warns(UserWarning, match='train.safetensors: it cannot be read'):
        y = load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm', verify=False)[1]
    assert torch.equal(y, data['train'][1])


# ---------------------------------------------------------------------------------------------- CIFAR-10 (JPEG)
def colour(k, n=10):
    "A distinct solid colour per class, far apart in RGB."
    return torch.tensor([(37 * k) % 256, (91 * k + 40) % 256, 255 - 25 * k], dtype=torch.uint8)


def make_jpeg_tree(folder: Path, per_class=(3, 2), classes=DS.CIFAR10_CLASSES, size=32):
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
    monkeypatch.setattr(DF, 'decode_image', None)
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
    xs, ys = load_dataset(name, 'train', root=data, verify=False)                  # not the published archive
    assert torch.equal(xs, x) and torch.equal(ys, y)
    assert load_dataset(name, 'test', root=data, verify=False)[0].shape == (6, 3, 32, 32)
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
    for _ in range(n_val):
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


# ---------------------------------------------------------------------------------------------- published checksums
def test_published_checksums_are_those_torchvision_lists():
    import torchvision.datasets as tvd
    assert {u.rsplit('/', 1)[-1]: md5 for u, md5 in tvd.FashionMNIST.resources} == {f'{k}.gz': v[0] for k, v in DF._FASHION_MD5.items()}
    assert (tvd.CIFAR10.filename, tvd.CIFAR10.tgz_md5) == DF._ARCHIVE_MD5['cifar10']
    assert (tvd.CIFAR100.filename, tvd.CIFAR100.tgz_md5) == DF._ARCHIVE_MD5['cifar100']


@pytest.mark.parametrize('gz', [True, False])
def test_fixture_under_the_published_names_is_refused(tmp_path, fresh_cache, gz):
    make_idx(tmp_path / 'fm', gz=gz)
    name = 'train-images-idx3-ubyte' + ('.gz' if gz else '')
    want = DF._FASHION_MD5['train-images-idx3-ubyte'][0 if gz else 1]
    found = hashlib.md5((tmp_path / 'fm' / name).read_bytes()).hexdigest()
    with pytest.raises(ValueError) as e:
        load_dataset('fashion-mnist', root=tmp_path / 'fm')
    msg = str(e.value)
    assert f'{tmp_path / "fm" / name} is not the published Fashion-MNIST file' in msg and want in msg and found in msg
    assert 'verify=False' in msg and 'github.com/zalandoresearch/fashion-mnist' in msg
    assert cache_files(fresh_cache) == []                                        # refused before anything was written
    load_dataset('fashion-mnist', root=tmp_path / 'fm', verify=False)           # the way for fixtures
    (folder,) = list((fresh_cache / 'fashion-mnist').iterdir())
    assert folder.name.endswith('-unverified')
    with safe_open(str(folder / 'train.safetensors'), 'pt') as f: meta = f.metadata()
    assert (meta['source_verified'], meta['source_check']) == ('false', 'not checked: verify=False')
    with pytest.raises(ValueError, match='is not the published'):                # an unverified cache never serves a checked load
        load_dataset('fashion-mnist', root=tmp_path / 'fm')


@pytest.mark.parametrize('name', ['cifar10', 'cifar100'])
def test_cifar_archive_checked_against_its_published_md5(tmp_path, fresh_cache, monkeypatch, name):
    import torchvision.datasets.cifar as tvc
    monkeypatch.setattr(tvc, 'check_integrity', lambda *a, **k: True)      # our fake batches have other md5s
    base = 'cifar-100-python' if name == 'cifar100' else 'cifar-10-batches-py'
    make_cifar_batches(tmp_path / 'b' / base, c100=name == 'cifar100')
    archive = tmp_path / 'data' / DF._ARCHIVE_MD5[name][0]; archive.parent.mkdir()
    with tarfile.open(archive, 'w:gz') as tf: tf.add(tmp_path / 'b' / base, arcname=base)
    found = hashlib.md5(archive.read_bytes()).hexdigest()
    with pytest.raises(ValueError) as e:
        load_dataset(name, root=tmp_path / 'data')
    msg = str(e.value)
    assert f'{archive} is not the published' in msg and found in msg and DF._ARCHIVE_MD5[name][1] in msg
    assert 'verify=False' in msg and 'www.cs.toronto.edu/~kriz/cifar.html' in msg
    assert cache_files(fresh_cache) == []
    assert load_dataset(name, root=tmp_path / 'data', verify=False)[0].shape == (30 if name == 'cifar10' else 6, 3, 32, 32)
    load_dataset(name, root=tmp_path / 'b')                                      # the extracted folder: torchvision checks each batch
    (f,) = [p for p in cache_files(fresh_cache) if p.name == 'test.safetensors' and 'unverified' not in p.parent.name]
    with safe_open(str(f), 'pt') as h: assert h.metadata()['source_check'] == 'verified by torchvision: the md5 of each batch file'


def test_unpublished_data_sets_are_not_checked(tmp_path, fresh_cache):
    make_jpeg_tree(tmp_path / 'cifar10-jpeg', per_class=(1, 1))
    load_dataset('cifar10-jpeg', 'test', root=tmp_path)
    load_dataset('cifar10-jpeg', 'test', root=tmp_path, verify=False)            # nothing to skip: the same cache
    (f,) = [p for p in cache_files(fresh_cache) if p.name == 'test.safetensors']
    with safe_open(str(f), 'pt') as h: meta = h.metadata()
    assert (meta['source_verified'], meta['source_check']) == ('false', 'not checked: no published checksum')


# ---------------------------------------------------------------------------------------------- the cache is checked when read
def _metadata(path):
    with safe_open(str(path), 'pt') as f: return f.metadata()

def _relabel(x, y, m, label):
    bad = y.clone(); bad[0] = label
    return {'images': x, 'labels': bad}, m | {'label_min': str(int(bad.min())), 'label_max': str(int(bad.max())),
                                              'sha256': DF._digest(x, bad)}

def _crop(x, y, m):
    x28 = x[:, :, 2:30, 2:30].contiguous()
    return {'images': x28, 'labels': y}, m | {'shape': json.dumps(list(x28.shape)), 'sha256': DF._digest(x28, y)}

def _flip_bit(x, y, m):
    x = x.clone(); x[3, 0, 5, 5] ^= 1
    return {'images': x, 'labels': y}, m

def _write(path, tensors_and_metadata):
    save_file(tensors_and_metadata[0], str(path), tensors_and_metadata[1])

# damage: (how to damage the file, given its path, images, labels and metadata), what the warning must say
CACHE_DAMAGE = {
    'truncated': (lambda p, x, y, m: p.write_bytes(p.read_bytes()[:-100]), 'it cannot be read'),
    'garbage': (lambda p, x, y, m: p.write_bytes(os.urandom(300)), 'it cannot be read'),
    'empty': (lambda p, x, y, m: p.write_bytes(b''), 'it cannot be read'),
    'older cache': (lambda p, x, y, m: save_file({'images': x, 'labels': y}, str(p), {k: m[k] for k in ('dataset', 'source', 'classes')}),
                    'written by an older version'),
    '100 images': (lambda p, x, y, m: save_file({'images': x[:1].repeat(100, 1, 1, 1), 'labels': y[:1].repeat(100)}, str(p), m),
                   'it holds 100 images and (100,) labels; its metadata says 30'),
    'count in metadata': (lambda p, x, y, m: save_file({'images': x, 'labels': y}, str(p), m | {'count': '31'}), 'its metadata says 31'),
    'metadata damaged': (lambda p, x, y, m: save_file({'images': x, 'labels': y}, str(p), m | {'count': 'thirty'}), 'its metadata is '
                                                                                                                    'damaged'),
    'images 28x28': (lambda p, x, y, m: _write(p, _crop(x, y, m)),
                     'images have shape (30, 1, 28, 28); Fashion-MNIST has (N, *(1, 32, 32))'),
    'float images': (lambda p, x, y, m: save_file({'images': x.float(), 'labels': y}, str(p), m), 'images are torch.float32'),
    'int32 labels': (lambda p, x, y, m: save_file({'images': x, 'labels': y.int()}, str(p), m), 'labels torch.int32'),
    'label 10': (lambda p, x, y, m: _write(p, _relabel(x, y, m, 10)), '..10 lie outside 0..9'),
    'label -1': (lambda p, x, y, m: _write(p, _relabel(x, y, m, -1)), 'labels -1..'),
    'label range in metadata': (lambda p, x, y, m: save_file({'images': x, 'labels': y}, str(p), m | {'label_min': '5'}), 'its metadata '
                                                                                                                          'says 5..'),
    'one bit': (lambda p, x, y, m: _write(p, _flip_bit(x, y, m)), 'the sha256 of its images and labels is not the one written'),
    'the test split': (lambda p, x, y, m: shutil.copyfile(p.parent / 'test.safetensors', p), "it holds 'fashion-mnist' 'test'"),
    'another tensor': (lambda p, x, y, m: save_file({'images': x, 'labels': y, 'extra': y.clone()}, str(p), m), "the tensors ['extra', "
                                                                                                                "'images', 'labels']"),
}


@pytest.mark.parametrize('damage', list(CACHE_DAMAGE))
def test_damaged_cache_is_decoded_again_once(tmp_path, fresh_cache, damage):
    make_idx(tmp_path / 'fm')
    x, y = (t.clone() for t in load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm', verify=False))   # the images map the file
    (path,) = [p for p in cache_files(fresh_cache) if p.name == 'train.safetensors']
    write, why = CACHE_DAMAGE[damage]
    write(path, x, y, _metadata(path))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        x2, y2 = load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm', verify=False)
    msgs = [str(m.message) for m in w]
    assert len(msgs) == 1 and msgs[0].startswith(f'{path}: ') and why in msgs[0] and 'decoding Fashion-MNIST again from' in msgs[0], msgs
    assert torch.equal(x2, x) and torch.equal(y2, y)
    with warnings.catch_warnings():                                             # the new file passes, without a warning
        warnings.simplefilter('error')
        assert torch.equal(load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm', verify=False)[1], y)


def test_cache_that_still_fails_is_an_error(tmp_path, fresh_cache, monkeypatch):
    make_idx(tmp_path / 'fm')
    save = DF.save_file
    no_hash = lambda tensors, path, metadata=None: save(tensors, path, {k: v for k, v in metadata.items() if k != 'sha256'})
    load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm', verify=False)
    (path,) = [p for p in cache_files(fresh_cache) if p.name == 'train.safetensors']
    path.write_bytes(b'')
    monkeypatch.setattr(DF, 'save_file', no_hash)                                # every file written from now on fails its check
    with pytest.warns(UserWarning, match='it cannot be read'), \
         pytest.raises(ValueError, match=r'train\.safetensors: just decoded again from .*fm, it still fails its check \(the sha256'):
        load_dataset('fashion-mnist', 'train', root=tmp_path / 'fm', verify=False)
    make_idx(tmp_path / 'fm2')
    with warnings.catch_warnings():                                             # a first build that fails: no second try
        warnings.simplefilter('error')
        with pytest.raises(ValueError, match=r'test\.safetensors: just decoded again .* still fails its check'):
            load_dataset('fashion-mnist', 'test', root=tmp_path / 'fm2', verify=False)


# ---------------------------------------------------------------------------------------------- discovery and bad input
def test_unknown_name():
    with pytest.raises(ValueError, match=r"unknown data set 'mnist'; valid: fashion-mnist, cifar10-jpeg, cifar10, cifar100, tinyimagenet, "
                                         r"synthetic"):
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
    (tmp_path / 'empty').mkdir()
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

def test_rsnn_data_must_exist(tmp_path, fresh_cache, monkeypatch):
    monkeypatch.setenv('RSNN_DATA', str(tmp_path / 'typo'))
    said = re.escape(f"RSNN_DATA='{tmp_path / 'typo'}' does not exist: set it to the folder that holds the data sets, or unset it")
    for call in (lambda: find_data('cifar10-jpeg'), lambda: load_dataset('fashion-mnist', 'test'), lambda: get_loaders('tinyimagenet')):
        with pytest.raises(FileNotFoundError, match=said): call()
    assert find_data('synthetic') is None and len(load_dataset('synthetic')[1]) == 2000     # synthetic data needs no folder
    make_jpeg_tree(tmp_path / 'mine' / 'cifar10-jpeg', per_class=(1, 1))
    assert find_data('cifar10-jpeg', root=tmp_path / 'mine') == tmp_path / 'mine' / 'cifar10-jpeg'   # root= does not look at RSNN_DATA
    (tmp_path / 'mine').rename(tmp_path / 'typo')
    assert find_data('cifar10-jpeg') == tmp_path / 'typo' / 'cifar10-jpeg'


def fake_download(tv_name, ok=True):
    class Fake:
        def __init__(self, root, train=True, download=False):
            if not ok: raise RuntimeError('Error downloading train-images-idx3-ubyte.gz:\nno network')
            make_idx(Path(root) / tv_name / 'raw', gz=True, seed=7)
    return Fake


@pytest.mark.parametrize('ok', [True, False])
def test_download_fallback(tmp_path, fresh_cache, monkeypatch, ok):
    monkeypatch.setattr(DF, '_search_roots', lambda: [(tmp_path / 'nothing', 'RSNN_DATA')])
    monkeypatch.setattr(DF._tv_datasets(), 'FashionMNIST', fake_download('FashionMNIST', ok))
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

X8, Y8 = torch.zeros(8, 1, 4, 4, dtype=torch.uint8), torch.arange(8)
# (call, what the one ValueError must say): bools, floats, negatives, strings and out-of-range seeds, wherever a count enters
BAD_COUNTS = {
    'BatchLoader batch_size=2.5': (lambda: D.BatchLoader(X8, Y8, batch_size=2.5), 'batch_size must be an integer in 1..inf, got 2.5'),
    'BatchLoader batch_size=2.0': (lambda: D.BatchLoader(X8, Y8, batch_size=2.0), 'batch_size must be an integer in *, got 2.0'),
    'BatchLoader batch_size=True': (lambda: D.BatchLoader(X8, Y8, batch_size=True), 'batch_size must be an integer in *, got True'),
    'BatchLoader batch_size=0': (lambda: D.BatchLoader(X8, Y8, batch_size=0), 'batch_size must be an integer in *, got 0'),
    'BatchLoader batch_size=-8': (lambda: D.BatchLoader(X8, Y8, batch_size=-8), 'batch_size must be an integer in *, got -8'),
    "BatchLoader batch_size='8'": (lambda: D.BatchLoader(X8, Y8, batch_size='8'), "batch_size must be an integer in *, got '8'"),
    'BatchLoader seed=-1': (lambda: D.BatchLoader(X8, Y8, seed=-1), 'seed must be an integer in 0..4294967295, got -1'),
    'BatchLoader seed=2**32': (lambda: D.BatchLoader(X8, Y8, seed=2**32), 'seed must be an integer in 0..4294967295, got 4294967296'),
    'BatchLoader seed=1.0': (lambda: D.BatchLoader(X8, Y8, seed=1.0), 'seed must be an integer in 0..4294967295, got 1.0'),
    'BatchLoader seed=False': (lambda: D.BatchLoader(X8, Y8, seed=False), 'seed must be an integer in 0..4294967295, got False'),
    'BatchLoader 5 labels': (lambda: D.BatchLoader(X8, Y8[:5]), '8 images but 5 labels'),
    'set_epoch(1.5)': (lambda: D.BatchLoader(X8, Y8).set_epoch(1.5), 'epoch must be an integer in *, got 1.5'),
    'set_epoch(-1)': (lambda: D.BatchLoader(X8, Y8).set_epoch(-1), 'epoch must be an integer in *, got -1'),
    'set_epoch(2**63)': (lambda: D.BatchLoader(X8, Y8).set_epoch(2**63), 'epoch must be an integer in *, got 9223372036854775808'),
    'get_loaders batch_size=2.5': (lambda: get_loaders('synthetic', batch_size=2.5), 'batch_size must be an integer in *, got 2.5'),
    'get_loaders batch_size=False': (lambda: get_loaders('synthetic', batch_size=False), 'batch_size must be an integer in *, got False'),
    'get_loaders seed=2**32': (lambda: get_loaders('synthetic', seed=2**32), 'seed must be an integer in 0..4294967295, got 4294967296'),
    'get_loaders seed=-3': (lambda: get_loaders('synthetic', seed=-3), 'seed must be an integer in 0..4294967295, got -3'),
    'get_loaders seed=0.5': (lambda: get_loaders('synthetic', seed=0.5), 'seed must be an integer in 0..4294967295, got 0.5'),
    'get_loaders n_train=-1': (lambda: get_loaders('synthetic', n_train=-1), 'n_train=-1 is not possible'),
    'get_loaders n_train=True': (lambda: get_loaders('synthetic', n_train=True), 'n_train=True is not possible'),
    'get_loaders n_train=100.0': (lambda: get_loaders('synthetic', n_train=100.0), 'n_train=100.0 is not possible'),
    'get_loaders n_val=2.5': (lambda: get_loaders('synthetic', n_val=2.5), 'n_val=2.5 is not possible'),
    'get_loaders n_val=False': (lambda: get_loaders('synthetic', n_val=False), 'n_val=False is not possible'),
    'get_loaders n_val=-5': (lambda: get_loaders('synthetic', n_val=-5), 'n_val=-5 is not possible'),
    'get_loaders n_test=True': (lambda: get_loaders('synthetic', n_test=True), 'n_test=True is not possible'),
    'get_loaders n_test=2.5': (lambda: get_loaders('synthetic', n_test=2.5), 'n_test=2.5 is not possible'),
    'stratified_split sizes=[2.5]': (lambda: stratified_split(Y8, [2.5]), 'sizes[0] must be an integer in 0..inf, got 2.5'),
    'stratified_split sizes=[True]': (lambda: stratified_split(Y8, [True]), 'sizes[0] must be an integer in *, got True'),
    'stratified_split sizes=[1, -1]': (lambda: stratified_split(Y8, [1, -1]), 'sizes[1] must be an integer in *, got -1'),
    'stratified_split sizes=[2.0]': (lambda: stratified_split(Y8, [2.0]), 'sizes[0] must be an integer in *, got 2.0'),
    "stratified_split sizes=['3']": (lambda: stratified_split(Y8, ['3']), "sizes[0] must be an integer in *, got '3'"),
    'stratified_split sizes=[None, 1]': (lambda: stratified_split(Y8, [None, 1]), 'sizes[0]=None: only the last size may be None'),
    'stratified_split sizes=[5, 5]': (lambda: stratified_split(Y8, [5, 5]), 'sizes=[5, 5] ask for 10 items, but labels has 8'),
    'stratified_split sizes=4': (lambda: stratified_split(Y8, 4), 'sizes must be a list of counts, got 4'),
    'stratified_split seed=-1': (lambda: stratified_split(Y8, [4], seed=-1), 'seed must be an integer in 0..4294967295, got -1'),
    'stratified_split seed=2**32': (lambda: stratified_split(Y8, [4], seed=2**32), 'seed must be an integer in 0..4294967295, got '
                                                                                   '4294967296'),
    'stratified_split seed=2.5': (lambda: stratified_split(Y8, [4], seed=2.5), 'seed must be an integer in 0..4294967295, got 2.5'),
    'stratified_split seed=True': (lambda: stratified_split(Y8, [4], seed=True), 'seed must be an integer in 0..4294967295, got True'),
    'stratified_split float labels': (lambda: stratified_split(Y8.float(), [4]), 'labels must be a 1-D tensor of integers >= 0, got a '
                                                                                 'torch.float32'),
    'stratified_split bool labels': (lambda: stratified_split(Y8 > 3, [4]), 'got a torch.bool tensor'),
    'stratified_split 2-D labels': (lambda: stratified_split(Y8[None], [4]), 'shape (1, 8)'),
    'stratified_split label -1': (lambda: stratified_split(Y8 - 1, [4]), 'got a label -1'),
    'stratified_split list labels': (lambda: stratified_split([0, 1], [1]), 'got a list'),
    'synthetic_spec n_train=2.5': (lambda: synthetic_spec(n_train=2.5), 'n_train must be an integer in 1..inf, got 2.5'),
    'synthetic_spec n_test=0': (lambda: synthetic_spec(n_test=0), 'n_test must be an integer in *, got 0'),
    'synthetic_spec num_classes=True': (lambda: synthetic_spec(num_classes=True), 'num_classes must be an integer in *, got True'),
    'synthetic_spec in_channels=0': (lambda: synthetic_spec(in_channels=0), 'in_channels must be an integer in *, got 0'),
    'synthetic_spec image_size=8.0': (lambda: synthetic_spec(image_size=8.0), 'image_size must be an integer in *, got 8.0'),
    'make_synthetic split=val': (lambda: DS.make_synthetic(DATASETS['synthetic'], 'val'), "unknown split 'val'; valid: train, test"),
    'channel_stats chunk=0': (lambda: channel_stats(X8, chunk=0), 'chunk must be an integer in *, got 0'),
    'random_crop_flip pad=-1': (lambda: D.random_crop_flip(X8.float(), pad=-1), 'pad must be an integer in *, got -1'),
    'random_crop_flip pad=1.5': (lambda: D.random_crop_flip(X8.float(), pad=1.5), 'pad must be an integer in *, got 1.5'),
    'random_resized_crop_flip size=0': (lambda: D.random_resized_crop_flip(X8.float(), size=0), 'size must be an integer in *, got 0'),
    'random_resized_crop_flip size=True': (lambda: D.random_resized_crop_flip(X8.float(), size=True), 'size must be an integer in *, got '
                                                                                                      'True'),
}


@pytest.mark.parametrize('case', list(BAD_COUNTS))
def test_bad_counts_and_seeds(case):
    call, said = BAD_COUNTS[case]                                       # '*' stands for the valid range
    with pytest.raises(ValueError, match='.*'.join(map(re.escape, said.split('*')))):
        call()


def test_counts_and_seeds_at_their_limits():
    assert len(D.BatchLoader(X8, Y8, batch_size=np.int64(3))) == 3                # NumPy integers are counts
    L = D.BatchLoader(X8, Y8, batch_size=4, shuffle=True, seed=2**32 - 1)         # the largest seed, at a huge epoch
    L.set_epoch(2**62)
    assert sorted(torch.cat([b[1] for b in L]).tolist()) == list(range(8))
    assert [len(s) for s in stratified_split(Y8, [np.int64(3), 0, None], seed=2**32 - 1)] == [3, 0, 5]
    assert [len(s) for s in stratified_split(torch.zeros(0, dtype=torch.long), [0, None])] == [0, 0]
    assert stratified_split(Y8.int(), [8])[0].tolist() == stratified_split(Y8, [8])[0].tolist()   # any integer dtype
    d = get_loaders('synthetic', batch_size=np.int64(50), n_train=np.int64(100), n_val=None, n_test=np.int32(20), seed=np.uint32(7))
    assert (len(d.train), len(d.test), d.val) == (2, 1, None)


def test_real_n_train_too_large():
    _real('cifar10-jpeg')
    with pytest.raises(ValueError, match=r'n_train=50001 is not possible: CIFAR-10 \(JPEG\) has 50000 training images'):
        get_loaders('cifar10-jpeg', n_train=50_001, download=False)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv('RSNN_CACHE', str(tmp_path / 'c'))
    assert DF.cache_dir() == tmp_path / 'c'
    monkeypatch.delenv('RSNN_CACHE')
    assert DF.cache_dir() == Path('~/.cache/robustsparsesnn').expanduser()


# ---------------------------------------------------------------------------------------------- stratified subsets
def within_bound(lab: torch.Tensor) -> bool:
    "Does every prefix of the label sequence `lab` hold each class within B = 1 - 1/(2K-2) of its share? (exact integers)"
    if len(lab) == 0: return True
    lab = torch.unique(lab, return_inverse=True)[1]                  # K: the classes present
    K, L = int(lab.max()) + 1, len(lab)
    if K == 1: return True
    t = F.one_hot(lab, K).long().cumsum(0)                           # t[m - 1, k]: class k among the first m
    m = torch.arange(1, L + 1)[:, None]
    return bool(((2 * K - 2) * (L * t - m * t[-1]).abs() <= (2 * K - 3) * L).all())


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=2, max_size=8), frac=st.tuples(st.floats(0, 1), st.floats(0, 1)),
       seed=st.integers(0, 2**31))
@example(counts=[1, 1, 13, 15, 15, 15], frac=(0.0, 0.5), seed=0)             # a prefix of 13 held 2 of class 5, 3.03 due
def test_stratified_split_properties(counts, frac, seed):
    labels = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])[torch.randperm(sum(counts))]
    N = len(labels)
    n_val = int(frac[0] * N); n_tr = int(frac[1] * (N - n_val))
    val, tr, rest = stratified_split(labels, [n_val, n_tr, None], seed)
    assert (len(val), len(tr), len(val) + len(tr) + len(rest)) == (n_val, n_tr, N)
    assert len(set(val.tolist()) | set(tr.tolist()) | set(rest.tolist())) == N          # disjoint, covering
    cnt = torch.tensor(counts, dtype=torch.float64)
    got = torch.bincount(labels[val], minlength=len(counts)).double()
    assert ((got - n_val * cnt / N).abs() < 1).all()                                   # proportional, within one
    assert all(torch.equal(a, b) for a, b in zip(stratified_split(labels, [n_val, n_tr, None], seed), (val, tr, rest)))
    for idx in (val, tr, rest):                 # interleaved: every prefix within Tijdeman's bound of each class's share
        assert within_bound(labels[idx]), labels[idx].tolist()


def parts_of(n):
    "Per-class index lists: class k holds the next n[k] integers."
    ends = np.cumsum(n)
    return [torch.arange(e - c, e) for c, e in zip(n, ends)]


@settings(max_examples=200, deadline=None)
@given(n=st.lists(st.integers(0, 60), min_size=1, max_size=12))
@example(n=[1, 1, 7, 7, 7, 7])
@example(n=[0, 0, 0])
@example(n=[0, 5, 0])
def test_interleave_keeps_every_item_in_its_window(n):
    out = D._interleave(parts_of(n))
    L = sum(n)
    assert sorted(out.tolist()) == list(range(L))                                       # each item once
    cls = torch.repeat_interleave(torch.arange(len(n)), torch.tensor(n, dtype=torch.long))[out]
    for k in range(len(n)): assert torch.equal(out[cls == k], parts_of(n)[k])          # a class keeps its own order
    assert within_bound(cls)
    present = np.array([c for c in n if c], dtype=np.int64)
    if len(present) > 1:
        rel, dl = D._windows(present)
        pos = D._positions(present) + 1
        assert ((rel <= pos) & (pos <= dl)).all()
    q = max(n)
    if q and all(c in (q - 1, q) for c in n) and sorted(n, reverse=True) == n:
        # a balanced subset (extras, if any, on the first classes): the classes take turns, as the greedy order had it
        assert cls.tolist() == [k for j in range(q) for k in range(len(n)) if j < n[k]]


@pytest.mark.parametrize('K,n', [(10, 37), (10, 500), (200, 100), (3, 1)])
def test_balanced_subsets_take_turns(K, n):
    out = D._interleave(parts_of([n] * K))
    assert (torch.arange(K * n)[out] // n).tolist() == list(range(K)) * n


def test_interleave_speed():
    for K in (10, 200):
        n = np.random.default_rng(0).multinomial(50_000 - K, np.ones(K) / K) + 1
        t = time.perf_counter(); D._positions(n)
        print(f'interleaving 50,000 items of {K} classes: {time.perf_counter() - t:.2f} s')   # a number, not an assertion


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
