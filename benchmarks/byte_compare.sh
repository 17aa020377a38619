#!/bin/bash
# Byte comparison for a refactor: the same ait commands (data, align, build, mix, score, experiment plan) on
# ../shared/data with two checkouts, then a diff of the two folders: every output and its stderr (timings masked)
# must match.
#   git archive main | tar -x -C /tmp/before
#   PY=$PWD/.venv/bin/python benchmarks/byte_compare.sh /tmp/before /tmp/before-out
#   benchmarks/byte_compare.sh . /tmp/after-out && diff -r /tmp/before-out /tmp/after-out && echo identical
# PY: the interpreter with ait's dependencies (default CHECKOUT/.venv/bin/python); the checkout's own code comes
# first through PYTHONPATH. DATA: the shared data (default CHECKOUT/../shared/data).
set -u
CO=$(cd "$1" && pwd); OUT=$2; rm -rf "$OUT"; mkdir -p "$OUT"; cd "$OUT"
PY=${PY:-$CO/.venv/bin/python}; export PYTHONPATH=$CO; AIT="$PY -m aligninstruct_cli"; D=$(cd "${DATA:-$CO/../shared/data}" && pwd)
export AIT_NO_COLOR=1 NO_COLOR=1 COLUMNS=120
run() { local name=$1; shift; "$@" >"$name.out" 2>"$name.err"; echo "rc=$?" >"$name.rc"; }
run opus-kk $AIT data opus100 --pair en-kk --split test --source $D/opus100
run opus-kk-dev $AIT data opus100 --pair en-kk --split dev --source $D/opus100
run opus-be $AIT data opus100 --pair be-en --split test --source $D/opus100 --direction both
run flores-kk $AIT data flores200 --lang kaz_Cyrl --split devtest --direction both --source $D/flores200
head -300 opus-kk-dev.out > kk.jsonl
run align-kk $AIT align kk.jsonl -o kk.aligned.jsonl
for g in deen enfr roen; do
  paste $D/align-gold/$g/test.src $D/align-gold/$g/test.tgt | head -200 > $g.tsv
  s=${g:0:2}; t=${g:2:2}
  run align-$g $AIT align $g.tsv --src-lang $s --tgt-lang $t -o $g.aligned.jsonl
  run align-$g-pharaoh $AIT align $g.tsv --src-lang $s --tgt-lang $t --format pharaoh --links forward
done
for obj in mt mono-full mono-half; do run build-$obj $AIT build kk.jsonl --objective $obj -o inst.$obj.jsonl; done
for obj in align hint revise mt; do run build-al-$obj $AIT build kk.aligned.jsonl --objective $obj -o inst.al-$obj.jsonl; done
run build-align-deen $AIT build deen.aligned.jsonl --objective align --negatives 0.5 --seed 3 -o inst.deen-align.jsonl
run mix-1 $AIT mix mt=inst.mt.jsonl align=inst.al-align.jsonl hint=inst.al-hint.jsonl --summary mix1.json -o mix1.jsonl
run mix-2 $AIT mix inst.mt.jsonl inst.al-revise.jsonl --mode interleave --seed 7 --max-per-lang 50 --weight inst.mt=0.5 -o mix2.jsonl
# score: hypotheses = references from another split, some perturbed
$PY - <<'PY'
import json
def hyp(path, outp, k):
    out=open(outp,"w")
    for i,l in enumerate(open(path)):
        if i>=200: break
        r=json.loads(l); words=r["tgt"].split()
        if i%k==0: words=words[::-1]
        r["hyp"]=" ".join(words); out.write(json.dumps(r,ensure_ascii=False)+"\n")
hyp("flores-kk.out","hypsA.jsonl",3); hyp("flores-kk.out","hypsB.jsonl",2)
PY
run score-1 $AIT score hypsA.jsonl --metrics bleu,chrf --bootstrap-samples 200 -f json
run score-2 $AIT score hypsA.jsonl --baseline hypsB.jsonl --metrics bleu,chrf --bootstrap-samples 200 -f markdown
run score-3 $AIT score hypsA.jsonl --metrics bleu,chrf -f markdown --layout table5 --bootstrap-samples 100
run score-4 $AIT score hypsA.jsonl --seen en,fr --metrics chrf --bootstrap-samples 100 -f json
$PY -c "
import json
rs=[json.loads(l) for l in open('hypsA.jsonl')]
open('hyp.txt','w').write(''.join(r['hyp']+'\n' for r in rs if r['src_lang']=='en'))
open('ref.txt','w').write(''.join(r['tgt']+'\n' for r in rs if r['src_lang']=='en'))
open('ref2.txt','w').write(''.join(r['tgt'][::-1]+'\n' for r in rs if r['src_lang']=='en'))
open('src.txt','w').write(''.join(r['src']+'\n' for r in rs if r['src_lang']=='en'))
"
run score-5 $AIT score hyp.txt --refs ref.txt --src-lang en --tgt-lang kk --bootstrap-samples 50
run score-6 $AIT score hyp.txt --refs ref.txt --refs ref2.txt --src src.txt --src-lang en --tgt-lang kk --bootstrap-samples 50
run score-7 $AIT score hyp.txt --refs ref.txt --src-lang en --tgt-lang kk --metrics comet,bleu
for c in $CO/examples/demo.yaml $CO/examples/paper/*.yaml; do
  n=$(basename $c .yaml); run plan-$n $AIT experiment plan $c --no-preflight
done
run help $AIT --help
run build-help $AIT build --help
run printcfg $AIT build --objective align --negatives 0.5 --print-config
# normalise the checkout path
grep -rl "$CO" . | xargs -r sed -i "s#$CO#CHECKOUT#g"
# stderr: timings and rates vary run to run
sed -i -E 's/in [0-9.]+s/in Ts/g; s/\([0-9,.]+ (input records|sentences|records)\/s\)/(R \1\/s)/g; s/[0-9.]+ s\b/T s/g' *.err
