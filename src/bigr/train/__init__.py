"""Training: the tokenizer (`train_tokenizer`) and the generator (`train_generator`), each a plain
function that reads top to bottom and runs on one CPU, one GPU, or many under torchrun."""
