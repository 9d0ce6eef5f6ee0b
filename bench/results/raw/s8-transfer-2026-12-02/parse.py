import json,re
def parse(n):
    evs=[]; pending=None; final=None
    for line in open(f'/tmp/s10b/runs/{n}.err'):
        if not line.startswith('windows'): continue
        head,ws=line.split(':',1); f=head.split()
        vals=[tuple(float(x) if i==0 else int(x) for i,x in enumerate(w.split('/'))) for w in ws.split()]
        rec=dict(bits=float(f[3]),mean=float(f[5]),lo=float(f[7]),w=vals)
        if f[1]=='calib':
            pending=rec
        else:
            if pending is not None:
                evs.append(dict(bits=pending['bits'],cal=pending,held=rec)); pending=None
            else: final=rec
    return evs,final
