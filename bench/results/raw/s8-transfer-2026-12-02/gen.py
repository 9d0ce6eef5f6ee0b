import json,sys,math,statistics as st
sys.path.insert(0,'/tmp/s10b')
def load(n):
    try: return json.load(open(f'/tmp/s10b/runs/{n}.json'))
    except Exception: return None
splits={}
for line in open('/tmp/s10b/splits/README'):
    f=line.split(' calib ');s=int(f[0]); c,h=f[1].split(' held ')
    splits[s]=(c.strip(),h.strip())
splits[0]=('[0, 2, 4, 6, 8]','[1, 3, 5, 7]')
def row(model,p,sc):
    o=load(f'{model}-p{p}-{sc}'); nw=load(f'{model}-new-p{p}-{sc}')
    if o is None: return None
    c=o['calibration']; h=o['heldout']['ear']
    r=dict(bits=o['avg_bits_per_param_quantized_layers'],nc=c['sequences'],nh=o['heldout']['sequences'],cm=c['mean'],
           margin=c['mean']-c['metric'],hm=h['mean'],hlo=h['lo95'],drop=c['mean']-h['mean'],met=o['target_met'])
    if nw:
        cn=nw['calibration']; hn=nw['heldout']['ear']
        r.update(nbits=nw['avg_bits_per_param_quantized_layers'],nmargin=cn['mean']-cn['metric'],nhlo=hn['lo95'],nmet=nw['target_met'],ndrop=cn['mean']-hn['mean'])
    return r
model=sys.argv[1]; ps=[int(x) for x in sys.argv[2].split(',')]
print('| split | calib docs (line numbers) | held-out docs | scales | windows cal/held | old rule: bits | calib mean | margin | held-out mean | held-out lo95 | drop | met | new rule: bits | margin | held-out lo95 | drop | met |')
print('|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|')
agg={}
for p in ps:
    for sc in ('fp16','s8'):
        r=row(model,p,sc)
        if r is None: continue
        a=agg.setdefault(sc,dict(fail=0,n=0,bits=[],nbits=[],nfail=0,nn=0,drop=[],margin=[],nmargin=[]))
        a['n']+=1; a['fail']+=not r['met']; a['bits'].append(r['bits']); a['drop'].append(r['drop']); a['margin'].append(r['margin'])
        new=''
        if 'nbits' in r:
            a['nn']+=1; a['nfail']+=not r['nmet']; a['nbits'].append(r['nbits']); a['nmargin'].append(r['nmargin'])
            new=f"{r['nbits']:.4f} | {r['nmargin']:.5f} | {r['nhlo']:.5f} | {r['ndrop']:+.5f} | {'yes' if r['nmet'] else '**no**'}"
        else: new='| | | | '
        c,h=splits[p]
        print(f"| p{p} | {c} | {h} | {sc} | {r['nc']}/{r['nh']} | {r['bits']:.4f} | {r['cm']:.5f} | {r['margin']:.5f} | {r['hm']:.5f} | {r['hlo']:.5f} | {r['drop']:+.5f} | {'yes' if r['met'] else '**no**'} | {new} |")
print()
for sc,a in agg.items():
    s=f"- {model} {sc}: old rule missed held-out {a['fail']}/{a['n']}, mean bits {st.mean(a['bits']):.4f}, mean margin {st.mean(a['margin']):.5f}, drop mean {st.mean(a['drop']):+.5f} sd {st.stdev(a['drop']):.5f}"
    if a['nn']: s+=f"; new rule missed {a['nfail']}/{a['nn']}, mean bits {st.mean(a['nbits']):.4f} (+{st.mean(a['nbits'])-st.mean(a['bits'][:a['nn']]):.4f} over the old rule on the same splits), mean margin {st.mean(a['nmargin']):.5f}"
    print(s)
fd=[row(model,p,'fp16')['drop'] for p in ps if row(model,p,'fp16') and row(model,p,'s8')]
sd=[row(model,p,'s8')['drop'] for p in ps if row(model,p,'fp16') and row(model,p,'s8')]
if len(fd)>2: print(f"- correlation of the old rule's drop, fp16 vs s8 over the same splits: {st.correlation(fd,sd):.2f} ({len(fd)} splits)")
