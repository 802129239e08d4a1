"""A straightforward NumPy transcription of the book's NeuralNetMLP (../shared/seed/neuralnetmlp.md),
written independently of xpnet to check it against: bias as column 0, samples as columns, the
global np.random stream seeded as the book does, the compounding eta decay, one-step momentum."""
import numpy as np


def expit(z):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


class BookMLP:
    def __init__(self, n_output, n_features, n_hidden=30, l1=0.0, l2=0.0, epochs=500, eta=0.001, alpha=0.0,
                 decrease_const=0.0, shuffle=True, minibatches=1, random_state=None):
        np.random.seed(random_state)
        self.n_output, self.n_features, self.n_hidden = n_output, n_features, n_hidden
        self.w1 = np.random.uniform(-1.0, 1.0, size=n_hidden * (n_features + 1)).reshape(n_hidden, n_features + 1)
        self.w2 = np.random.uniform(-1.0, 1.0, size=n_output * (n_hidden + 1)).reshape(n_output, n_hidden + 1)
        self.l1, self.l2, self.epochs, self.eta, self.alpha = l1, l2, epochs, eta, alpha
        self.decrease_const, self.shuffle, self.minibatches = decrease_const, shuffle, minibatches
        self.orders = []  # the composed data order of every epoch, for the test

    def _encode_labels(self, y, k):
        onehot = np.zeros((k, y.shape[0]))
        for idx, val in enumerate(y):
            onehot[val, idx] = 1.0
        return onehot

    def _add_bias_unit(self, X, how="column"):
        if how == "column":
            X_new = np.ones((X.shape[0], X.shape[1] + 1))
            X_new[:, 1:] = X
        else:
            X_new = np.ones((X.shape[0] + 1, X.shape[1]))
            X_new[1:, :] = X
        return X_new

    def _feedforward(self, X, w1, w2):
        a1 = self._add_bias_unit(X, how="column")
        z2 = w1.dot(a1.T)
        a2 = expit(z2)
        a2 = self._add_bias_unit(a2, how="row")
        z3 = w2.dot(a2)
        a3 = expit(z3)
        return a1, z2, a2, z3, a3

    def _L2_reg(self, lambda_, w1, w2):
        return (lambda_ / 2.0) * (np.sum(w1[:, 1:] ** 2) + np.sum(w2[:, 1:] ** 2))

    def _L1_reg(self, lambda_, w1, w2):
        return (lambda_ / 2.0) * (np.abs(w1[:, 1:]).sum() + np.abs(w2[:, 1:]).sum())

    def _get_cost(self, y_enc, output, w1, w2):
        term1 = -y_enc * (np.log(output))
        term2 = (1.0 - y_enc) * np.log(1.0 - output)
        cost = np.sum(term1 - term2)
        return cost + self._L1_reg(self.l1, w1, w2) + self._L2_reg(self.l2, w1, w2)

    def _get_gradient(self, a1, a2, a3, z2, y_enc, w1, w2):
        sigma3 = a3 - y_enc
        z2 = self._add_bias_unit(z2, how="row")
        sigma2 = w2.T.dot(sigma3) * (expit(z2) * (1.0 - expit(z2)))
        sigma2 = sigma2[1:, :]
        grad1 = sigma2.dot(a1)
        grad2 = sigma3.dot(a2.T)
        grad1[:, 1:] += self.l2 * w1[:, 1:]
        grad1[:, 1:] += self.l1 * np.sign(w1[:, 1:])
        grad2[:, 1:] += self.l2 * w2[:, 1:]
        grad2[:, 1:] += self.l1 * np.sign(w2[:, 1:])
        return grad1, grad2

    def gradient(self, X, y_enc):
        """(grad1, grad2) at the current weights, for lockstep comparison."""
        a1, z2, a2, z3, a3 = self._feedforward(X, self.w1, self.w2)
        return self._get_gradient(a1, a2, a3, z2, y_enc, self.w1, self.w2)

    def predict(self, X):
        a1, z2, a2, z3, a3 = self._feedforward(X, self.w1, self.w2)
        return np.argmax(z3, axis=0)

    def fit(self, X, y, on_step=None):
        """on_step(X_batch, y_enc_batch) is called before each update, with the weights of that step."""
        self.cost_ = []
        X_data, y_data = X.copy(), y.copy()
        y_enc = self._encode_labels(y, self.n_output)
        order = np.arange(X.shape[0])
        delta_w1_prev = np.zeros(self.w1.shape)
        delta_w2_prev = np.zeros(self.w2.shape)
        for i in range(self.epochs):
            self.eta /= (1 + self.decrease_const * i)
            if self.shuffle:
                idx = np.random.permutation(y_data.shape[0])
                X_data, y_enc, order = X_data[idx], y_enc[:, idx], order[idx]
            self.orders.append(order)
            mini = np.array_split(range(y_data.shape[0]), self.minibatches)
            for idx in mini:
                if on_step is not None:
                    on_step(X_data[idx], y_enc[:, idx])
                a1, z2, a2, z3, a3 = self._feedforward(X_data[idx], self.w1, self.w2)
                cost = self._get_cost(y_enc=y_enc[:, idx], output=a3, w1=self.w1, w2=self.w2)
                self.cost_.append(cost)
                grad1, grad2 = self._get_gradient(a1=a1, a2=a2, a3=a3, z2=z2, y_enc=y_enc[:, idx],
                                                  w1=self.w1, w2=self.w2)
                delta_w1, delta_w2 = self.eta * grad1, self.eta * grad2
                self.w1 -= (delta_w1 + (self.alpha * delta_w1_prev))
                self.w2 -= (delta_w2 + (self.alpha * delta_w2_prev))
                delta_w1_prev, delta_w2_prev = delta_w1, delta_w2
        return self
