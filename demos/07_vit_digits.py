"""07 -- A Vision Transformer reads an image as a sentence of patches.

The image is cut into square patches; each patch is flattened and projected to a vector (one Linear, the same
as a convolution whose kernel and stride are the patch size); a learned *class token* is put in front; learned
position vectors are added; and a Transformer encoder lets every patch attend to every other. The class token's
final vector, read by one Linear, gives the class scores (``numpy_transformer.models.VisionTransformer``).

The data are scikit-learn's handwritten digits (``sklearn.datasets.load_digits``): 1,797 grey images of 8 x 8
pixels, digits 0-9, from the UCI "Optical Recognition of Handwritten Digits" set, bundled with scikit-learn
(no download). With 2 x 2 patches an image is a sentence of 16 patches. The pictures: the patch grid, the
loss curve, and where the class token looks when it decides.
"""
import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # small matrices: one BLAS thread is fastest

import time  # noqa: E402

import numpy as np  # noqa: E402
from _common import Progress, done, save, section, setup  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from numpy_transformer.data.metrics import accuracy  # noqa: E402
from numpy_transformer.functional.losses import cross_entropy_backward, cross_entropy_forward  # noqa: E402
from numpy_transformer.models import VisionTransformer  # noqa: E402
from numpy_transformer.optim import AdamW, clip_grad_norm_, warmup_cosine  # noqa: E402
from numpy_transformer.viz import loss_curve, patch_grid  # noqa: E402

args = setup("07_vit_digits", "a Vision Transformer learns handwritten digits from 2x2 patches")
rng = np.random.default_rng(args.seed)
started = time.perf_counter()

section("1. the data: 8 x 8 handwritten digits")
digits = load_digits()
images = (digits.images / 16.0).astype(np.float32)[:, None]        # (N, 1, 8, 8), pixels in [0, 1]
labels = digits.target.astype(np.int64)                             # (N,)
order = rng.permutation(len(labels))
n_test = len(labels) // 5
test_index, train_index = order[:n_test], order[n_test:]
if args.quick:
    train_index, test_index = train_index[:300], test_index[:100]
mean, std = images[train_index].mean(), images[train_index].std()
images = (images - mean) / std                                      # zero mean, unit variance (training statistics)
print(f"  {len(labels)} images of {images.shape[2]}x{images.shape[3]} pixels (sklearn.datasets.load_digits); "
      f"{len(train_index)} for training, {len(test_index)} held out for the test")
patch = 2
fig = patch_grid(digits.images[order[0]], patch, cmap="gray_r", grid_color="tab:orange",
                 title=f"A digit '{labels[order[0]]}' cut into {(8 // patch) ** 2} patches of {patch}x{patch} "
                       "pixels\n(the numbers give each patch's position in the sequence)")
save(fig, args.out, "07_patches.png")

section("2. the model")
model = VisionTransformer(image_size=8, patch_size=patch, in_channels=1, num_classes=10,
                          d_model=32 if args.quick else 64, nhead=4, num_layers=1 if args.quick else 3,
                          dim_feedforward=64 if args.quick else 128, dropout=0.1, rng=args.seed)
print(f"  VisionTransformer: {model.num_patches} patches of {patch}x{patch} + 1 class token = "
      f"{model.num_patches + 1} positions; {model.num_parameters():,} parameters")

section("3. training")
epochs = 5 if args.quick else 50
batch_size = 64
steps_per_epoch = int(np.ceil(len(train_index) / batch_size))
steps = epochs * steps_per_epoch
optimizer = AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
schedule = warmup_cosine(optimizer, warmup_steps=max(1, steps // 20), total_steps=steps)
print(f"  {epochs} epochs of {steps_per_epoch} batches of {batch_size}: AdamW, warmup then cosine decay, "
      "gradient clipping at 1.0")


def evaluate(index):
    model.eval()
    predictions = np.concatenate([model(images[index[i:i + 500]]).argmax(axis=1)
                                  for i in range(0, len(index), 500)])
    model.train()
    return accuracy(predictions, labels[index])


progress = Progress(total=steps, every=max(1, steps // 12))
losses, val_steps, val_accuracy = [], [], []
step = 0
for epoch in range(epochs):
    for batch in np.array_split(rng.permutation(train_index), steps_per_epoch):
        step += 1
        logits = model(images[batch])                     # (B, 10)
        loss, cache = cross_entropy_forward(logits, labels[batch])
        model.zero_grad()
        model.backward(cross_entropy_backward(1.0, cache))
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss))
        extra = {}
        if step % steps_per_epoch == 0 and (epoch + 1) % max(1, epochs // 8) == 0:
            val_steps.append(step)
            val_accuracy.append(evaluate(test_index))
            extra = {"test_accuracy": val_accuracy[-1]}
        progress.update(step, float(np.mean(losses[-steps_per_epoch:])), epoch=epoch + 1, **extra)
test_accuracy = evaluate(test_index)
train_accuracy = evaluate(train_index)
print(f"  trained in {time.perf_counter() - progress.start:.1f} s")
print(f"  train accuracy: {train_accuracy:.3f}")
print(f"  test accuracy: {test_accuracy:.3f}")
window = min(steps_per_epoch, len(losses))
fig = loss_curve(np.arange(1, len(losses) + 1), losses, smooth=window,
                 title="ViT on 8x8 digits: training loss and held-out accuracy", ylabel="cross-entropy",
                 accuracy_steps=val_steps, accuracy=val_accuracy, accuracy_label="held-out test accuracy")
save(fig, args.out, "07_loss.png")

section("4. where the class token looks")
from matplotlib.figure import Figure  # noqa: E402

# one held-out example of each digit, so that the maps can be compared across classes
shown = np.array([test_index[labels[test_index] == digit][0] for digit in range(10)
                  if (labels[test_index] == digit).any()])
last_layer = len(model.encoder.layers) - 1
first = model.cls_attention(images[shown], layer=0)                # (N, H, 4, 4) on the patch grid
heads = first.shape[1]
maps = {0: first.mean(axis=1)}                                      # (N, 4, 4): mean of the heads
if last_layer:
    maps[last_layer] = model.cls_attention(images[shown], layer=last_layer).mean(axis=1)
model.eval()
predicted = model(images[shown]).argmax(axis=1)
model.train()
print(f"  class token -> patches, mean over {heads} heads: (images, rows, columns) {maps[0].shape}, "
      f"for layers {', '.join(map(str, maps))} (numbered from 0)")
top = max(float(m.max()) for m in maps.values())                    # one colour scale for every panel
fig = Figure(figsize=(1.4 * len(shown) + 0.9, 1.5 * (1 + len(maps)) + 0.7), layout="constrained")
axes = fig.subplots(1 + len(maps), len(shown), squeeze=False)
side = digits.images.shape[1]
for column, index in enumerate(shown):
    digit = digits.images[index]                                    # (8, 8) ink in [0, 16]
    axes[0, column].imshow(digit, cmap="gray_r", interpolation="nearest")  # dark ink on white, as 07_patches
    axes[0, column].set_title(f"true {labels[index]}, says {predicted[column]}", fontsize=9,
                              color="black" if labels[index] == predicted[column] else "red")
    for row, layer_maps in enumerate(maps.values(), start=1):
        # the 4 x 4 map stretched over the 8 x 8 pixels, the digit's ink drawn on top as an outline
        image = axes[row, column].imshow(layer_maps[column], cmap="viridis", vmin=0.0, vmax=top,
                                         extent=(-0.5, side - 0.5, side - 0.5, -0.5), interpolation="nearest")
        axes[row, column].contour(digit, levels=[6.0], colors="white", linewidths=1.5)
    for row in range(1 + len(maps)):
        axes[row, column].set_xticks([])
        axes[row, column].set_yticks([])
axes[0, 0].set_ylabel("the digit", fontsize=10)
for row, layer in enumerate(maps, start=1):
    axes[row, 0].set_ylabel(f"layer {layer}" + (" (last)" if layer == last_layer and layer else ""), fontsize=10)
fig.colorbar(image, ax=axes[1:, -1], label="class token's attention\n(mean of the heads)", shrink=0.9)
fig.suptitle("Where the class token looks when it decides: its attention over the 4x4 patches of held-out digits "
             "(white: the digit's outline)")
save(fig, args.out, "07_cls_attention.png")
print(f"\n  total time {time.perf_counter() - started:.1f} s")
done(args.out)
