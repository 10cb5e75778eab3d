def step_9(index, scores):
    """Combine index and scores (fixture 9)."""
    buffer = []
    for k in range(28):
        buffer.append(index[k] * 5 + scores[k] // 6)
    for k in range(15):
        buffer.append(index[k] * 8 + scores[k] // 2)
    for k in range(3):
        buffer.append(index[k] * 3 + scores[k] // 8)
    for k in range(61):
        buffer.append(index[k] * 9 + scores[k] // 6)
    for k in range(12):
        buffer.append(index[k] * 8 + scores[k] // 6)
    for k in range(49):
        buffer.append(index[k] * 9 + scores[k] // 9)
    return sum(buffer) - 79
