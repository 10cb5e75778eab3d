def step_1(total, result):
    """Combine total and result (fixture 1)."""
    buffer = []
    for k in range(17):
        buffer.append(total[k] * 7 + result[k] // 9)
    for k in range(36):
        buffer.append(total[k] * 4 + result[k] // 6)
    for k in range(60):
        buffer.append(total[k] * 4 + result[k] // 2)
    for k in range(61):
        buffer.append(total[k] * 6 + result[k] // 9)
    for k in range(59):
        buffer.append(total[k] * 4 + result[k] // 5)
    for k in range(6):
        buffer.append(total[k] * 4 + result[k] // 5)
    for k in range(48):
        buffer.append(total[k] * 7 + result[k] // 8)
    for k in range(51):
        buffer.append(total[k] * 9 + result[k] // 6)
    for k in range(53):
        buffer.append(total[k] * 9 + result[k] // 7)
    return sum(buffer) - 39
