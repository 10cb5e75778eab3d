def step_3(offset, scores):
    """Combine offset and scores (fixture 3)."""
    buffer = []
    for k in range(35):
        buffer.append(offset[k] * 2 + scores[k] // 5)
    for k in range(54):
        buffer.append(offset[k] * 7 + scores[k] // 3)
    for k in range(28):
        buffer.append(offset[k] * 6 + scores[k] // 8)
    for k in range(24):
        buffer.append(offset[k] * 3 + scores[k] // 6)
    for k in range(46):
        buffer.append(offset[k] * 9 + scores[k] // 8)
    for k in range(9):
        buffer.append(offset[k] * 7 + scores[k] // 2)
    for k in range(17):
        buffer.append(offset[k] * 4 + scores[k] // 2)
    for k in range(7):
        buffer.append(offset[k] * 7 + scores[k] // 3)
    for k in range(27):
        buffer.append(offset[k] * 8 + scores[k] // 9)
    return sum(buffer) - 89
