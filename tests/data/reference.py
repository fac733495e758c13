"""Independent NumPy references for the data tests."""

import numpy as np

# Published per-channel statistics, typed here independently of tfgap.data.specs.
MEAN_STD = {
    "mnist": ([0.1307], [0.3081]),
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    "cifar100": ([0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762]),
    "imagenet2012": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


def normalize(name, image):
    mean, std = MEAN_STD[name]
    return (np.asarray(image, np.float64) / 255.0 - np.array(mean)) / np.array(std)


def _weights(out_size, in_size):
    """Bilinear sampling with half-pixel centres (TF2's tf.image.resize)."""
    scale = in_size / out_size
    centre = (np.arange(out_size) + 0.5) * scale - 0.5
    floor = np.floor(centre)
    lower = np.maximum(floor, 0).astype(int)
    upper = np.minimum(np.ceil(centre), in_size - 1).astype(int)
    return lower, upper, centre - floor


def resize_bilinear(image, height, width):
    image = np.asarray(image, np.float64)
    top, bottom, dy = _weights(height, image.shape[0])
    left, right, dx = _weights(width, image.shape[1])
    rows = image[top] + (image[bottom] - image[top]) * dy[:, None, None]
    return rows[:, left] + (rows[:, right] - rows[:, left]) * dx[None, :, None]


def imagenet_eval(image, resize=256, size=224):
    h, w = image.shape[:2]
    short = min(h, w)
    new_h, new_w = int(round(h * resize / short)), int(round(w * resize / short))
    resized = resize_bilinear(image, new_h, new_w)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return normalize("imagenet2012", resized[top:top + size, left:left + size])


def crops_of_padded(image, pad=4):
    """Every 32x32 crop (and its mirror) of the zero-padded image."""
    h, w = image.shape[:2]
    padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)])
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[dy:dy + h, dx:dx + w]
            yield (dy, dx, False), crop
            yield (dy, dx, True), crop[:, ::-1]
