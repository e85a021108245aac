#!/bin/bash
# Issue 32: mnist_attention, a warm restart from the shipped 100-epoch weights:
# 100 more epochs, cosine from 3e-4 (1,000 warmup steps) to 3e-6. Resume: run this again.
cd $HOME/runs/code_restart
exec python train.py --flagfile=configs/mnist_attention.flags \
  --workdir=$HOME/runs/mnist_attention_restart --data_dir=/work/shared/data/mnist \
  --init_from=mnist_attention --learning_rate=3e-4 --learning_rate_warmup_steps=1000 \
  --num_epochs=100 >> $HOME/runs/mnist_attention_restart.log 2>&1
