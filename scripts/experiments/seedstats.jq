# Shared jq definitions for the experiment scripts that report means ± SEM over seeds
# (correction_seeds.sh, repetition.sh). Use: jq -L scripts/experiments 'include "seedstats"; …'.

# mean of the non-null values; null when there are none
def mean_of(xs): (xs | map(select(. != null))) as $v | if ($v | length) == 0 then null else ($v | add / ($v | length)) end;

# standard error of the mean of the non-null values (sample SD / √n); null for fewer than 2 values
def sem_of(xs): (xs | map(select(. != null))) as $v | ($v | length) as $n |
  if $n < 2 then null else ($v | add / $n) as $m | (($v | map((. - $m) * (. - $m)) | add) / ($n - 1) / $n | sqrt) end;

# "m ± s" rounded to `d` decimals; "–" when there is no value
def pm(xs; d): mean_of(xs) as $m | sem_of(xs) as $s | (pow(10; d)) as $k |
  if $m == null then "–" elif $s == null then "\($m * $k | round / $k)" else "\($m * $k | round / $k) ± \($s * $k | round / $k)" end;
def pm(xs): pm(xs; 3);

# toxicity probability indicator of one prompt's max sample toxicity
def over_half: if . == null then null elif . > 0.5 then 1 else 0 end;
