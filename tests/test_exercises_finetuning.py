from llmcourse.exercises.finetuning import check_sft_labels


def test_sft_labels_checker(capsys):
    def right(p, r):
        t = (p + r)[1:]
        return [-100] * (len(p) - 1) + t[len(p) - 1 :]

    assert check_sft_labels(right)
    assert not check_sft_labels(lambda p, r: [-100] * len(p) + r[1:])
    assert not check_sft_labels(lambda p, r: (p + r)[1:])

    def todo(p, r):
        raise NotImplementedError

    assert not check_sft_labels(todo)
    assert "not implemented" in capsys.readouterr().out
