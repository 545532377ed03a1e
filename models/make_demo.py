#!/usr/bin/python3
"""Train inferd's demo model, an Iris-species classifier, and save models/demo.pt.

    /usr/bin/python3 models/make_demo.py        (torch is only in /usr/bin/python3)

forward(x: Tensor[N,4] float32) -> Tensor[N,3] float32
  x: sepal length, sepal width, petal length, petal width, in cm (raw values:
     the standardisation is inside the model).
  returns softmax class probabilities for (setosa, versicolor, virginica).

Data: models/iris.csv, Fisher's iris data as bundled with scikit-learn
(first line "150,4,setosa,versicolor,virginica", then rows of four
measurements and a class index 0..2).  A file with a named header
(sepal_length,...,species) and species names in the last column is read too.

Training is deterministic (fixed seed, one thread, full-batch Adam), so a
rebuild gives the same weights and, with PYTHONHASHSEED fixed, the same bytes.
"""

import os
import sys

if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"   # stable TorchScript output bytes
    os.execv(sys.executable, [sys.executable] + sys.argv)

import csv

import torch
from torch import Tensor, nn

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = ["setosa", "versicolor", "virginica"]
SEED = 0
EPOCHS = 500
LR = 0.05


def load_iris(path):
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    header, rows = rows[0], rows[1:]
    xs, ys = [], []
    for r in rows:
        xs.append([float(v) for v in r[:4]])
        label = r[4].strip()
        ys.append(int(label) if label.isdigit()
                  else CLASSES.index(label.lower().replace("iris-", "")))
    if header[0].strip().isdigit():       # scikit-learn style header
        assert [h.strip() for h in header[2:5]] == CLASSES, header
    return torch.tensor(xs, dtype=torch.float32), torch.tensor(ys)


class IrisNet(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor):
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        self.fc1 = nn.Linear(4, 16)
        self.fc2 = nn.Linear(16, 3)

    def logits(self, x: Tensor) -> Tensor:
        x = (x - self.mean) / self.std
        return self.fc2(torch.relu(self.fc1(x)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.logits(x), dim=1)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    x, y = load_iris(os.path.join(HERE, "iris.csv"))
    assert x.shape == (150, 4) and torch.bincount(y).tolist() == [50, 50, 50]

    model = IrisNet(x.mean(0), x.std(0))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(EPOCHS):
        opt.zero_grad()
        loss = loss_fn(model.logits(x), y)
        loss.backward()
        opt.step()

    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    print("final loss %.4f, training accuracy %.2f%% (%d/150)"
          % (loss.item(), 100 * acc, round(acc * 150)))
    if acc < 0.95:
        sys.exit("training accuracy below 95%")

    out = os.path.join(HERE, "demo.pt")
    torch.jit.script(model).save(out, _extra_files={"classes.txt": "\n".join(CLASSES) + "\n"})

    loaded = torch.jit.load(out)
    print("wrote %s (%d bytes)" % (out, os.path.getsize(out)))
    # Rows 1, 51 and 101 of iris.csv: one flower of each species.
    for row in ([5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]):
        with torch.no_grad():
            p = loaded(torch.tensor([row]))[0].tolist()
        print("  %s -> [%s]" % (row, ", ".join("%.6g" % v for v in p)))


if __name__ == "__main__":
    main()
