# Classifying names by language with a character RNN, in the style of the "NLP from scratch"
# tutorial: one-hot letters, nn.RNN, LogSoftmax + NLLLoss, clip_grad_norm_, topk.
import string

import torch
import torch.nn as nn
import torch.nn.functional as F

allowed_characters = string.ascii_letters + " .,;'"
n_letters = len(allowed_characters)


def letterToIndex(letter):
    return allowed_characters.find(letter)


def lineToTensor(line):
    tensor = torch.zeros(len(line), 1, n_letters)
    for li, letter in enumerate(line):
        tensor[li][0][letterToIndex(letter)] = 1
    return tensor


class CharRNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super(CharRNN, self).__init__()
        self.rnn = nn.RNN(input_size, hidden_size)
        self.h2o = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, line_tensor):
        rnn_out, hidden = self.rnn(line_tensor)
        output = self.h2o(hidden[0])
        output = self.softmax(output)
        return output


data = {
    "Italian": ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"],
    "Japanese": ["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura"],
    "Scottish": ["Smith", "Brown", "Wilson", "Campbell", "Stewart", "Thomson", "Robertson", "Anderson"],
}
labels_uniq = list(data)
pairs = [(name, i) for i, lang in enumerate(labels_uniq) for name in data[lang]]

torch.manual_seed(2024)
rnn = CharRNN(n_letters, 32, len(labels_uniq))
criterion = nn.NLLLoss()
optimizer = torch.optim.SGD(rnn.parameters(), lr=0.05)
epoch_losses = []
for epoch in range(40):
    rnn.zero_grad()
    batch_loss = 0
    for i in torch.randperm(len(pairs)).tolist():
        name, label = pairs[i]
        output = rnn(lineToTensor(name))
        loss = criterion(output, torch.tensor([label], dtype=torch.long))
        batch_loss += loss
    batch_loss.backward()
    nn.utils.clip_grad_norm_(rnn.parameters(), 3)
    optimizer.step()
    optimizer.zero_grad()
    epoch_losses.append(batch_loss.item() / len(pairs))

rnn.eval()
correct = 0
with torch.no_grad():
    for name, label in pairs:
        top_n, top_i = rnn(lineToTensor(name)).topk(1)
        correct += int(top_i[0].item() == label)
RESULT = {"first": epoch_losses[0], "last": epoch_losses[-1], "accuracy": correct / len(pairs)}
