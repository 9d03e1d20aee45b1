from ev import *
import sys
S=np.load(sys.argv[1]); n=len(S); yes=labels=='yes'
np.fill_diagonal(S,-1)
cross=np.where(yes[:,None]!=yes[None,:], S, -1)
for qname,null in [('max',cross.max(1)),('top3',np.sort(cross,1)[:,-3]),('p99',np.quantile(np.where(yes[:,None]!=yes[None,:],S,np.nan),0.99,axis=1) if False else np.sort(cross,1)[:,-15])]:
    print(qname, 'null quantiles', np.quantile(null,[0.1,0.5,0.9]).round(3))
    for mode in ['diff','ratio']:
        for m in ([0.0,0.02,0.05,0.08] if mode=='diff' else [0.3,0.4,0.5,0.6]):
            nm=np.maximum(null[:,None],null[None,:])
            sc = S-nm if mode=='diff' else (S-nm)/(1-nm)
            Ss={}
            for lab in ['yes','no']:
                idx=np.where(labels==lab)[0]; Ss[lab]=(idx,(sc[np.ix_(idx,idx)]>m).astype(np.float32))
            pred=cc_at(Ss,0.5); p,r,a,b=pairs_pr(list(pred),list(ref)); print(f'  {mode} {m}: P {p:.3f} R {r:.3f} groups {len(set(pred))}')
