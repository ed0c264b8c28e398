"""Where a model errs: its wrong predictions, most confident first. One function for the demo (which reads a
run's predictions_<split>.csv) and `finetune.score` (which has just predicted)."""


def most_confident_mistakes(texts: list[str], labels: list[str], predicted: list[str], confidence: list[float],
                            limit: int | None = None) -> list[dict]:
    """The reviews whose predicted label is not their label, surest first (ties keep the data's order), with
    `confidence` the probability the model gave its prediction."""
    wrong = [i for i in range(len(texts)) if predicted[i] != labels[i]]
    wrong.sort(key=lambda i: -confidence[i])
    return [{"text": texts[i], "label": labels[i], "predicted_label": predicted[i], "confidence": float(confidence[i])}
            for i in wrong[:limit]]


def furthest_off(texts: list[str], labels: list[float], values: list[float], limit: int | None = None) -> list[dict]:
    """A rating model's reviews, the predicted value furthest from the true rating first (ties keep the data's
    order), with the signed error."""
    order = sorted(range(len(texts)), key=lambda i: -abs(values[i] - labels[i]))
    return [{"text": texts[i], "label": labels[i], "value": values[i], "error": values[i] - labels[i]}
            for i in order[:limit]]
