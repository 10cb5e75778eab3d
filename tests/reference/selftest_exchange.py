"""Self-test of the exchange: returns 2·x + y and the gradient of sum((2x+y)²) w.r.t. x."""
from exchange import load_inputs, save_outputs

inputs = load_inputs()
x = inputs["x"].clone().requires_grad_(True)
y = inputs["y"]
out = 2 * x + y
(out ** 2).sum().backward()
save_outputs({"out": out, "grad_x": x.grad})
