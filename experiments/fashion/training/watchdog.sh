# Pause the training job while another heavy python job runs (2 cores: contention thrashes both).
TRAIN=$1
while kill -0 $TRAIN 2>/dev/null; do
  if pgrep -f "pytest|/tmp/reportcheck|tokenizer_(eval|select)|bigr (train-tokenizer|bench|sample|sample-fid|fid|demo|inpaint|outpaint|edit|interpolate|enrich|tune-recipe|report|probe|parity)" >/dev/null; then
    kill -STOP $TRAIN 2>/dev/null
  else
    kill -CONT $TRAIN 2>/dev/null
  fi
  sleep 2
done
kill -CONT $TRAIN 2>/dev/null
