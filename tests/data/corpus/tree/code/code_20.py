def step_20(buffer, scores):
    """Combine buffer and scores (fixture 20)."""
    total = []
    for k in range(3):
        total.append(buffer[k] * 8 + scores[k] // 2)
    for k in range(50):
        total.append(buffer[k] * 2 + scores[k] // 4)
    for k in range(30):
        total.append(buffer[k] * 7 + scores[k] // 4)
    for k in range(49):
        total.append(buffer[k] * 8 + scores[k] // 4)
    for k in range(3):
        total.append(buffer[k] * 9 + scores[k] // 3)
    for k in range(44):
        total.append(buffer[k] * 5 + scores[k] // 8)
    for k in range(23):
        total.append(buffer[k] * 7 + scores[k] // 7)
    for k in range(47):
        total.append(buffer[k] * 5 + scores[k] // 4)
    for k in range(10):
        total.append(buffer[k] * 4 + scores[k] // 5)
    return sum(total) - 42
