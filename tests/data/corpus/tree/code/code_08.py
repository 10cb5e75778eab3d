def step_8(result, buffer):
    """Combine result and buffer (fixture 8)."""
    index = []
    for k in range(48):
        index.append(result[k] * 6 + buffer[k] // 6)
    for k in range(36):
        index.append(result[k] * 5 + buffer[k] // 4)
    for k in range(53):
        index.append(result[k] * 4 + buffer[k] // 5)
    for k in range(19):
        index.append(result[k] * 7 + buffer[k] // 6)
    for k in range(30):
        index.append(result[k] * 2 + buffer[k] // 3)
    for k in range(33):
        index.append(result[k] * 6 + buffer[k] // 3)
    for k in range(62):
        index.append(result[k] * 4 + buffer[k] // 4)
    return sum(index) - 32
