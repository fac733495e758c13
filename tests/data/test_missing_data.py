import time

import pytest

from tfgap import data


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_missing_tfds_dataset_fails_fast_with_instructions(name, tmp_path):
    data_dir = str(tmp_path / "nowhere")
    start = time.perf_counter()
    with pytest.raises(data.DatasetNotPreparedError) as info:
        data.build_dataset(name, "train", batch_size=4, training=True, data_dir=data_dir)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert repr(name) in message and data_dir in message
    assert f"tfds build {name} --data_dir={data_dir}" in message
    # A library error names the argument (the command line translates it to --download).
    assert "re-run with download=True" in message
    assert isinstance(info.value, RuntimeError)
    assert info.value.name == name and info.value.data_dir == data_dir


def test_missing_imagenet_names_the_manual_dir_and_both_archives(tmp_path):
    data_dir = str(tmp_path / "nowhere")
    start = time.perf_counter()
    for download in (False, True):  # ImageNet can never be downloaded
        with pytest.raises(data.DatasetNotPreparedError) as info:
            data.build_dataset("imagenet2012", "test", batch_size=4, training=False,
                               data_dir=data_dir, download=download)
        message = str(info.value)
        assert "'imagenet2012'" in message and data_dir in message
        assert f"{data_dir}/downloads/manual" in message
        assert "ILSVRC2012_img_train.tar" in message and "ILSVRC2012_img_val.tar" in message
        assert "tfds build imagenet2012" in message
    assert time.perf_counter() - start < 10
