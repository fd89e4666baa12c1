# A convolutional classifier in the style of the official MNIST example: Conv2d, Dropout,
# max pooling, log_softmax + nll_loss, Adadelta and StepLR. Small local digits stand in for MNIST.
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(16 * 6 * 6, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    return test_loss, correct / len(test_loader.dataset)


def digits(n, seed):
    rng = np.random.default_rng(seed)
    templates = (np.random.default_rng(7).random((10, 16, 16)) > 0.6).astype(np.float32)
    labels = rng.integers(0, 10, n)
    images = templates[labels] + 0.3 * rng.standard_normal((n, 16, 16)).astype(np.float32)
    return torch.from_numpy(images[:, None]), torch.from_numpy(labels)


torch.manual_seed(1)
use_accel = torch.accelerator.is_available()
device = torch.accelerator.current_accelerator() if use_accel else torch.device("cpu")
train_kwargs = {'batch_size': 32}
test_kwargs = {'batch_size': 100}
if use_accel:
    train_kwargs.update({'num_workers': 1, 'pin_memory': True, 'shuffle': True})

train_loader = DataLoader(TensorDataset(*digits(384, 1)), shuffle=True, **train_kwargs)
test_loader = DataLoader(TensorDataset(*digits(200, 2)), **test_kwargs)

model = Net().to(device)
optimizer = optim.Adadelta(model.parameters(), lr=1.0)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
before = test(model, device, test_loader)
for epoch in range(1, 4):
    train(model, device, train_loader, optimizer, epoch)
    scheduler.step()
after = test(model, device, test_loader)

RESULT = {"before": before, "after": after, "lr": optimizer.param_groups[0]["lr"]}
