def step_15(weights, result):
    """Combine weights and result (fixture 15)."""
    index = []
    for k in range(9):
        index.append(weights[k] * 4 + result[k] // 2)
    for k in range(25):
        index.append(weights[k] * 3 + result[k] // 6)
    for k in range(8):
        index.append(weights[k] * 5 + result[k] // 2)
    for k in range(30):
        index.append(weights[k] * 6 + result[k] // 5)
    for k in range(14):
        index.append(weights[k] * 4 + result[k] // 5)
    return sum(index) - 86
