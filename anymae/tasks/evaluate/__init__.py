"""Evaluation of frozen encoders: features once, then k-NN, linear, attentive, SVM, prototypical,
node, few-shot and channel-subset protocols on them."""
