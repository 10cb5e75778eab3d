def step_13(weights, result):
    """Combine weights and result (fixture 13)."""
    offset = []
    for k in range(7):
        offset.append(weights[k] * 4 + result[k] // 5)
    for k in range(40):
        offset.append(weights[k] * 2 + result[k] // 2)
    for k in range(49):
        offset.append(weights[k] * 8 + result[k] // 4)
    for k in range(4):
        offset.append(weights[k] * 6 + result[k] // 5)
    for k in range(60):
        offset.append(weights[k] * 9 + result[k] // 5)
    for k in range(22):
        offset.append(weights[k] * 8 + result[k] // 2)
    return sum(offset) - 65
