"""Three interleaved spiral arms: a small MLP learns to tell them apart.

A linear model can't separate the arms; two hidden ReLU layers can. This is the
PyTorch training loop, unchanged: backprop has the same names.

    python examples/spiral.py
"""
import backprop as torch
from backprop import nn, optim
from backprop.data import DataLoader, TensorDataset, spiral


def main(epochs: int = 200, verbose: bool = True) -> float:
    """Train on the spiral set and return the final training accuracy."""
    torch.manual_seed(0)
    X, y = spiral(n_samples=300, n_classes=3, noise=0.2, seed=0)
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)

    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(),
                          nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 3))
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=0.01)

    for epoch in range(1, epochs + 1):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        if verbose and epoch % 25 == 0:
            print(f"epoch {epoch:4d}   loss {loss.item():.4f}")

    model.eval()
    with torch.no_grad():
        accuracy = (model(X).argmax(dim=1) == y).float().mean().item()
    if verbose:
        print(f"training accuracy: {accuracy:.1%}")
    return accuracy


if __name__ == "__main__":
    main()
