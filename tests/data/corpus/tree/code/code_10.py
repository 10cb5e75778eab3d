def step_10(value, weights):
    """Combine value and weights (fixture 10)."""
    buffer = []
    for k in range(37):
        buffer.append(value[k] * 7 + weights[k] // 9)
    for k in range(46):
        buffer.append(value[k] * 4 + weights[k] // 7)
    for k in range(32):
        buffer.append(value[k] * 8 + weights[k] // 8)
    for k in range(2):
        buffer.append(value[k] * 3 + weights[k] // 3)
    for k in range(9):
        buffer.append(value[k] * 4 + weights[k] // 4)
    return sum(buffer) - 49
