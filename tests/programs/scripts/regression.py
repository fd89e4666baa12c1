# Polynomial regression in the style of the official regression example: features by torch.cat,
# one Linear layer, smooth_l1_loss, and a hand-written update through param.data.
import torch
import torch.nn.functional as F

POLY_DEGREE = 4
torch.manual_seed(42)
W_target = torch.randn(POLY_DEGREE, 1) * 5
b_target = torch.randn(1) * 5


def make_features(x):
    x = x.unsqueeze(1)
    return torch.cat([x ** i for i in range(1, POLY_DEGREE + 1)], 1)


def f(x):
    return x.mm(W_target) + b_target.item()


def get_batch(batch_size=32):
    random = torch.randn(batch_size)
    x = make_features(random)
    y = f(x)
    return x, y


fc = torch.nn.Linear(W_target.size(0), 1)
losses = []
for batch_idx in range(1, 2001):
    batch_x, batch_y = get_batch()
    fc.zero_grad()
    output = F.smooth_l1_loss(fc(batch_x), batch_y)
    loss = output.item()
    losses.append(loss)
    output.backward()
    for param in fc.parameters():
        param.data.add_(-0.1 * param.grad)
    if loss < 1e-3:
        break

err = (fc.weight.view(-1) - W_target.view(-1)).abs().max().item()
RESULT = {"steps": batch_idx, "final_loss": loss, "weight_error": err,
          "first_loss": losses[0]}
