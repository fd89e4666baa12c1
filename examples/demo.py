"""The first thing to run: a two-layer network learns XOR with the raw engine.

Forward pass makes a prediction, the loss measures the error, backward gives
every parameter its share of the blame, and a gradient step moves each one.
"""
import backprop

backprop.manual_seed(0)
X = backprop.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
y = backprop.tensor([[0.0], [1.0], [1.0], [0.0]])

W1 = (backprop.randn(2, 8) * 0.8).requires_grad_()
b1 = backprop.zeros(8, requires_grad=True)
W2 = (backprop.randn(8, 1) * 0.8).requires_grad_()
b2 = backprop.zeros(1, requires_grad=True)
params = [W1, b1, W2, b2]


def sigmoid(z):
    return 1 / (1 + (-z).exp())


lr = 1.0
for step in range(2001):
    h = sigmoid(X @ W1 + b1)            # forward: hidden layer
    p = sigmoid(h @ W2 + b2)            # forward: prediction
    loss = ((p - y) ** 2).mean()        # the error
    for w in params:
        w.grad = None
    loss.backward()                     # backprop: every parameter's share of the blame
    with backprop.no_grad():
        for w in params:
            w -= lr * w.grad            # step against the gradient
    if step % 250 == 0:
        print(f"step {step:5d}   loss {loss.item():.6f}")

print("predictions:", [round(v, 3) for v in p.detach().numpy().ravel().tolist()], "target: [0, 1, 1, 0]")
