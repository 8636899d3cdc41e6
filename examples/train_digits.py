"""Train a small neural network on scikit-learn's bundled digits data; print metrics per epoch.

Every epoch prints ``epoch=<n> accuracy=<validation accuracy> loss=<training loss>``: katuna
reads these lines from the output, as Katib's stdout collector would.
"""

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", type=int, required=True)
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--activation", choices=["relu", "tanh", "logistic"], required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden,), alpha=args.alpha, learning_rate_init=args.lr,
        activation=args.activation, batch_size=args.batch_size, random_state=0,
    )
    classes = np.unique(y)
    for epoch in range(1, args.epochs + 1):
        model.partial_fit(x_train, y_train, classes=classes)
        accuracy = model.score(x_val, y_val)
        print(f"epoch={epoch} accuracy={accuracy:.4f} loss={model.loss_:.4f}")


if __name__ == "__main__":
    main()
