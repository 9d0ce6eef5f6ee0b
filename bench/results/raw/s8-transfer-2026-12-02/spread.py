import sys,statistics as st
sys.path.insert(0,'/tmp/s10b'); from parse import parse
def cv(w):
    d=[1-x[0] for x in w]; m=sum((1-x[0])*x[1] for x in w)/sum(x[1] for x in w); return m, st.stdev(d)/m
print('| run | allocation bits | calib 1-EAR | calib CV | held-out 1-EAR | held-out CV | held-out / calib damage |')
print('|---|---:|---:|---:|---:|---:|---:|')
for n in sys.argv[1:]:
    evs,final=parse(n)
    for e in sorted(evs,key=lambda e:e['bits']):
        mc,cc=cv(e['cal']['w']); mh,ch=cv(e['held']['w'])
        print(f"| {n} | {e['bits']:.4f} | {mc:.5f} | {cc:.3f} | {mh:.5f} | {ch:.3f} | {mh/mc:.3f} |")
