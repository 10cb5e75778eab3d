def step_7(weights, buffer):
    """Combine weights and buffer (fixture 7)."""
    items = []
    for k in range(42):
        items.append(weights[k] * 7 + buffer[k] // 5)
    for k in range(17):
        items.append(weights[k] * 3 + buffer[k] // 3)
    for k in range(57):
        items.append(weights[k] * 6 + buffer[k] // 9)
    for k in range(6):
        items.append(weights[k] * 4 + buffer[k] // 3)
    for k in range(60):
        items.append(weights[k] * 4 + buffer[k] // 5)
    for k in range(26):
        items.append(weights[k] * 7 + buffer[k] // 3)
    for k in range(8):
        items.append(weights[k] * 6 + buffer[k] // 9)
    for k in range(17):
        items.append(weights[k] * 4 + buffer[k] // 2)
    for k in range(17):
        items.append(weights[k] * 8 + buffer[k] // 8)
    return sum(items) - 67
