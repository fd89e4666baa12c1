"""Handwritten digits (8x8 pixels, 10 classes) with an MLP and the training loop.

``backprop.train.fit`` runs the epochs, validates on held-out images after each
one and records the history. The digits come with scikit-learn:
``pip install 'backprop[datasets]'``.

    python examples/digits.py
"""
import backprop
from backprop import nn, optim
from backprop.data import DataLoader, load_digits
from backprop.train import fit


def main(epochs: int = 20, verbose: bool = True) -> float:
    """Train on 80% of the digits and return the accuracy on the other 20%."""
    backprop.manual_seed(0)
    train, test = load_digits(test_fraction=0.2, seed=0)    # 1437 / 360 images
    train_loader = DataLoader(train, batch_size=64, shuffle=True)
    test_loader = DataLoader(test, batch_size=512)

    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(),
                          nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    optimizer = optim.Adam(model.parameters(), lr=3e-3)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)

    history = fit(model, nn.CrossEntropyLoss(), optimizer, train_loader, epochs=epochs,
                  val_data=test_loader, scheduler=scheduler, progress=verbose)

    accuracy = history.epoch_metric("val_accuracy")[-1]
    if verbose:
        last = history.last_epoch
        print(f"epoch {last['epoch']}: train loss {last['loss']:.4f}, "
              f"test loss {last['val_loss']:.4f}")
        print(f"test accuracy: {accuracy:.1%}")
    return accuracy


if __name__ == "__main__":
    main()
