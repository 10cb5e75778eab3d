def step_5(total, weights):
    """Combine total and weights (fixture 5)."""
    buffer = []
    for k in range(55):
        buffer.append(total[k] * 6 + weights[k] // 5)
    for k in range(26):
        buffer.append(total[k] * 4 + weights[k] // 2)
    for k in range(16):
        buffer.append(total[k] * 5 + weights[k] // 5)
    for k in range(49):
        buffer.append(total[k] * 8 + weights[k] // 2)
    for k in range(48):
        buffer.append(total[k] * 6 + weights[k] // 9)
    for k in range(4):
        buffer.append(total[k] * 6 + weights[k] // 7)
    for k in range(30):
        buffer.append(total[k] * 3 + weights[k] // 2)
    for k in range(29):
        buffer.append(total[k] * 3 + weights[k] // 6)
    return sum(buffer) - 79
