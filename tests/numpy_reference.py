"""Loop-by-loop NumPy transcriptions of the DRAW paper's equations.

Written from the paper (Gregor et al. 2015), not from draw_tf, so that the
tests compare the package against the equations. Everything is float64 and
uses the paper's 1-based filter index i and pixel coordinates a, b.
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def filterbank(center, stride, variance, N, size):
    """Eqs. 19-20 and 25-26 for one axis: F[i - 1, a - 1], [N, size]."""
    F = np.zeros((N, size))
    for i in range(1, N + 1):
        mu = center + (i - N / 2 - 0.5) * stride  # eqs. 19-20
        for a in range(1, size + 1):
            F[i - 1, a - 1] = np.exp(-((a - mu) ** 2) / (2 * variance))
        F[i - 1] /= F[i - 1].sum()  # Z normalises the row
    return F


def window_from_linear(raw, N, A, B):
    """Eqs. 22-24 from the 5 linear outputs of eq. 21.

    Returns (g_X, g_Y, sigma^2, delta, gamma). For N = 1 the stride factor
    (max(A, B) - 1) / (N - 1) is replaced by max(A, B) - 1 (the single
    filter does not move with the stride).
    """
    g_x_tilde, g_y_tilde, log_sigma2, log_delta_tilde, log_gamma = raw
    g_x = (A + 1) / 2 * (g_x_tilde + 1)  # eq. 22
    g_y = (B + 1) / 2 * (g_y_tilde + 1)  # eq. 23
    factor = (max(A, B) - 1) / (N - 1) if N > 1 else max(A, B) - 1
    delta = factor * np.exp(log_delta_tilde)  # eq. 24
    return g_x, g_y, np.exp(log_sigma2), delta, np.exp(log_gamma)


def read_glimpse(image, F_X, F_Y, gamma):
    """Eq. 27 for each channel, gamma * F_Y x F_X^T: [N, N, C]."""
    N, A = F_X.shape
    B = F_Y.shape[1]
    C = image.shape[2]
    out = np.zeros((N, N, C))
    for c in range(C):
        for j in range(N):
            for i in range(N):
                total = 0.0
                for b in range(B):
                    for a in range(A):
                        total += F_Y[j, b] * image[b, a, c] * F_X[i, a]
                out[j, i, c] = gamma * total
    return out


def write_patch(w, F_X, F_Y, gamma):
    """Eq. 29 for each channel, 1/gamma * F_Y^T w F_X: [B, A, C]."""
    N, A = F_X.shape
    B = F_Y.shape[1]
    C = w.shape[2]
    out = np.zeros((B, A, C))
    for c in range(C):
        for b in range(B):
            for a in range(A):
                total = 0.0
                for j in range(N):
                    for i in range(N):
                        total += F_Y[j, b] * w[j, i, c] * F_X[i, a]
                out[b, a, c] = total / gamma
    return out


def lstm(x, h, c, kernel, recurrent_kernel, bias):
    """A standard LSTM step, gates in the order (input, forget, cell, out)."""
    z = x @ kernel + h @ recurrent_kernel + bias
    n = h.shape[-1]
    i = sigmoid(z[..., :n])
    f = sigmoid(z[..., n : 2 * n])
    g = np.tanh(z[..., 2 * n : 3 * n])
    o = sigmoid(z[..., 3 * n :])
    c = f * c + i * g
    return o * np.tanh(c), c


def kl_closed_form(mu, log_sigma):
    """Eq. 11 for one image: mu, log_sigma of shape [T, |z|]."""
    T, z = mu.shape
    sigma2 = np.exp(2 * log_sigma)
    return 0.5 * np.sum(mu**2 + sigma2 - np.log(sigma2)) - T * z / 2
